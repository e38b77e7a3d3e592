using Akka.Actor;
using Akka.Cluster;

namespace Caas.Node;

/// <summary>
/// Holds the web server back until this node is an Up member of its cluster, so the first requests do not time out
/// against shard regions that cannot place entities yet. Registered after Akka, before Kestrel starts.
/// </summary>
public sealed class ClusterReadiness(ActorSystem system, ILogger<ClusterReadiness> logger) : IHostedService
{
    public static readonly TimeSpan Cap = TimeSpan.FromSeconds(60);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var cluster = Cluster.Get(system);
        if (cluster.SelfMember.Status == MemberStatus.Up) return;
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        try
        {
            await up.Task.WaitAsync(Cap, cancellationToken);
        }
        catch (TimeoutException)
        {
            // Serve anyway: /health/ready says not ready until the node joins.
            logger.LogWarning("Not an Up cluster member after {Cap}; serving, and /health/ready reports the cluster state", Cap);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
