using Akka.Actor;
using Akka.Hosting;
using Caas.Actors.Common;
using Caas.Actors.Media;
using Caas.Streams.Media;
using Caas.Streams.Operational;
using Caas.Streams.ReadModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Caas.Web.Media;

/// <summary>Asks the media entities (the media shard region).</summary>
public sealed class MediaGateway(IRequiredActor<MediaRegion> region, Edge.EdgeSettings edge)
{
    public async Task<object> AskAsync(IMediaCommand command, CancellationToken ct = default)
    {
        try
        {
            return await region.ActorRef.Ask<object>(command, edge.AskTimeout, ct);
        }
        catch (AskTimeoutException)
        {
            return new Rejection(ErrorCodes.Overloaded, "The cluster did not answer in time; retry.", RetryAfterSeconds: 1);
        }
    }
}

/// <summary>The call entities, as the media uploads ask them about a recording's upload (<see cref="CheckRecordingUpload"/>, <see cref="AttachRecording"/>).</summary>
public sealed class RecordingLinks(IRequiredActor<Caas.Actors.Calls.CallRoomRegion> calls, Edge.EdgeSettings edge)
{
    public async Task<object> AskAsync(Caas.Actors.Calls.ICallCommand command, CancellationToken ct = default)
    {
        try
        {
            return await calls.ActorRef.Ask<object>(command, edge.AskTimeout, ct);
        }
        catch (AskTimeoutException)
        {
            return new Rejection(ErrorCodes.Overloaded, "The cluster did not answer in time; retry.", RetryAfterSeconds: 1);
        }
    }
}

public static class MediaHosting
{
    /// <summary>
    /// The media capability's services: the store (S3 when <c>CAAS_S3_ENDPOINT</c> is set, else <c>{data}/media</c>),
    /// upload sessions (Redis when <c>CAAS_REDIS</c> is set, else the operational store), quotas, the read model, signed
    /// links and the sweep of expired uploads. A host may register its own <see cref="MediaSettings"/> after this.
    /// </summary>
    public static IServiceCollection AddCaasMedia(this IServiceCollection services, MediaSettings settings, string dataDir)
    {
        services.AddSingleton(settings);
        services.AddSingleton(sp => sp.GetRequiredService<MediaSettings>().Store.Create(dataDir));
        services.AddSingleton<IConnectionMultiplexer>(sp =>
        {
            var redis = sp.GetRequiredService<MediaSettings>().Redis ?? throw new InvalidOperationException("CAAS_REDIS is not set.");
            var options = ConfigurationOptions.Parse(redis);
            // Start without Redis rather than fail: a call while it is away answers 503 and changes nothing.
            options.AbortOnConnectFail = false;
            return ConnectionMultiplexer.Connect(options);
        });
        services.AddSingleton<IUploadSessions>(sp => sp.GetRequiredService<MediaSettings>().Redis is null
            ? new OperationalUploadSessions(sp.GetRequiredService<OperationalStore>())
            : new RedisUploadSessions(sp.GetRequiredService<IConnectionMultiplexer>()));
        services.AddSingleton(sp => new MediaUsage(sp.GetRequiredService<OperationalStore>()));
        services.AddSingleton(sp => new MediaReadModel(sp.GetRequiredService<ReadModelStore>()));
        services.AddSingleton(sp => new SignedLinks(sp.GetRequiredService<MediaSettings>()));
        services.AddSingleton<MediaGateway>();
        services.AddSingleton<UploadProgressPush>();
        services.AddSingleton<RecordingLinks>();
        services.AddSingleton<MediaUploads>();
        services.AddSingleton<ThumbnailQueue>();
        services.AddHostedService(sp => sp.GetRequiredService<ThumbnailQueue>());
        services.AddHostedService(sp => new UploadSweep(sp.GetRequiredService<IUploadSessions>(), sp.GetRequiredService<IMediaStore>(),
            sp.GetRequiredService<ILogger<UploadSweep>>(), sp.GetRequiredService<MediaSettings>().SweepEvery));
        services.AddHostedService<MediaRetentionSweep>();
        return services;
    }

    /// <summary>Creates the bucket or folder and the read model's table; run before the node serves.</summary>
    public static async Task PrepareMediaAsync(this IServiceProvider services, CancellationToken ct = default)
    {
        var settings = services.GetRequiredService<MediaSettings>();
        var store = services.GetRequiredService<IMediaStore>();
        if (store is S3MediaStore && settings.ChunkBytes < 5 * MediaSettings.MiB)
            throw new InvalidOperationException("CAAS_MEDIA_CHUNK_MB must be at least 5 on S3 (its smallest part).");
        await store.EnsureReadyAsync(ct);
        await services.GetRequiredService<MediaReadModel>().EnsureSchemaAsync(ct);
    }
}
