using Akka.Actor;
using Akka.Cluster.Tools.Singleton;
using Caas.Streams.DeadLetters;
using Caas.Streams.ReadModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Caas.Streams.Kafka;

/// <summary>
/// Kafka out of CAAS: the <c>chat.events</c> projection (a cluster singleton on the projections role, so one node
/// publishes) and the dead-letter publisher to <c>chat.dlq</c>.
/// </summary>
public sealed class KafkaOutbound(KafkaSettings settings, IServiceProvider services, ILogger<KafkaOutbound> logger) : IHostedService
{
    public const string ProjectionsRole = "projections";
    private KafkaPublisher? _publisher;

    public Task StartAsync(CancellationToken ct)
    {
        var system = services.GetRequiredService<ActorSystem>();
        _publisher = new KafkaPublisher(settings, logger);
        var offsets = new ProjectionOffsetStore(services.GetRequiredService<ReadModelStore>());
        var openJournal = OpenJournal(services);
        system.ActorOf(ClusterSingletonManager.Props(
                ChatEventsProjection.PropsFor(_publisher, offsets, settings, ProjectionSettings.From(system.Settings.Config), openJournal),
                PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole(ProjectionsRole)),
            "chat-events-projection");
        system.ActorOf(ClusterSingletonManager.Props(
                MediaEventsProjection.PropsFor(_publisher, offsets, settings, ProjectionSettings.From(system.Settings.Config), openJournal),
                PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole(ProjectionsRole)),
            "media-events-projection");
        var letters = services.GetRequiredService<DeadLetterStore>();
        var publisher = _publisher;
        // A letter is in the table before it is published; a failed publish is logged, the table stays the record.
        letters.Publisher = async letter =>
        {
            try
            {
                await publisher.PublishDeadLetterAsync(letter);
            }
            catch (Exception e)
            {
                logger.LogWarning("Dead letter {Id} not published to {Topic}: {Reason}", letter.Id, settings.DeadLetterTopic, e.Message);
            }
        };
        return Task.CompletedTask;
    }

    /// <summary>The journal's database for the outbound projections' late-commit sweeps: PostgreSQL only (SQLite's one writer leaves no gaps).</summary>
    public static Func<CancellationToken, Task<System.Data.Common.DbConnection>>? OpenJournal(IServiceProvider services) =>
        services.GetService<Caas.Actors.Hosting.StorageOptions>() is { IsPostgres: true } storage ? ct => JournalDb.OpenAsync(storage, ct) : null;

    public Task StopAsync(CancellationToken ct)
    {
        _publisher?.Dispose();
        return Task.CompletedTask;
    }
}
