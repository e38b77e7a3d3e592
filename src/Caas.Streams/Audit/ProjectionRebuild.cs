using Akka.Actor;
using Akka.Cluster.Tools.Singleton;
using Caas.Actors.Hosting;
using Caas.Streams.ReadModel;
using Prometheus;

namespace Caas.Streams.Audit;

/// <summary>Asks the running projection to empty its read model and write it again from the journal's start.</summary>
public sealed record RebuildProjection(string Name);

/// <summary>The projection has emptied its tables and restarted from offset 0.</summary>
public sealed record RebuildStarted(string Name);

/// <summary>A rebuild's progress: the projection's offset against the journal's last conversation event when it began.</summary>
public sealed record RebuildStatus(string Name, string State, long Offset, long TargetOffset, DateTimeOffset? StartedAt, DateTimeOffset? CompletedAt);

/// <summary>
/// Rebuilds of the read model while the node serves: the projection singleton (wherever it runs) stops its stream,
/// waits for its batch in flight, empties its tables and offset, and starts again from the journal's start; rows
/// reappear as they are rebuilt. Progress is the stored offset against the target (also on <c>/metrics</c>).
/// </summary>
public sealed class ProjectionRebuilds(ActorSystem system, string singletonManagerPath, string singletonName, string role,
    StorageOptions storage, ReadModelWriter writer)
{
    public static readonly IReadOnlyList<string> Names = [ReadModelWriter.ProjectionName];

    private static readonly Gauge Target = Metrics.CreateGauge("caas_projection_rebuild_target_offset",
        "The journal offset a running or finished rebuild must reach.", "projection");
    private static readonly Counter Rebuilds = Metrics.CreateCounter("caas_projection_rebuilds_total",
        "Read-model rebuilds started.", "projection");

    private readonly Lazy<IActorRef> _projection = new(() => system.ActorOf(ClusterSingletonProxy.Props(singletonManagerPath,
        ClusterSingletonProxySettings.Create(system).WithSingletonName(singletonName).WithRole(role)), "projection-rebuild-proxy"));
    private readonly Lock _lock = new();
    private RebuildStatus? _last;

    public async Task<RebuildStatus> StartAsync(string name, CancellationToken ct = default)
    {
        var target = await LastConversationOffsetAsync(storage, ct);
        var startedAt = DateTimeOffset.UtcNow;
        await _projection.Value.Ask<RebuildStarted>(new RebuildProjection(name), TimeSpan.FromSeconds(30), ct);
        Rebuilds.WithLabels(name).Inc();
        Target.WithLabels(name).Set(target);
        lock (_lock) _last = new RebuildStatus(name, "running", 0, target, startedAt, null);
        return await StatusAsync(name, ct);
    }

    public async Task<RebuildStatus> StatusAsync(string name, CancellationToken ct = default)
    {
        var offset = await writer.LoadOffsetAsync(name, ct);
        lock (_lock)
        {
            if (_last is null || _last.Name != name) return new RebuildStatus(name, "idle", offset, 0, null, null);
            if (_last.State == "running" && offset >= _last.TargetOffset)
                _last = _last with { State = "done", CompletedAt = DateTimeOffset.UtcNow };
            return _last with { Offset = offset };
        }
    }

    /// <summary>The journal offset of the last conversation event now: the rebuild is done when the projection passes it.</summary>
    public static async Task<long> LastConversationOffsetAsync(StorageOptions storage, CancellationToken ct)
    {
        await using var c = await JournalDb.OpenAsync(storage, ct);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COALESCE(MAX(ordering), 0) FROM journal WHERE persistence_id LIKE 'conversation|%'";
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct));
    }
}
