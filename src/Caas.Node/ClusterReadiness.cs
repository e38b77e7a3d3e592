using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Caas.Actors.Conversations;

namespace Caas.Node;

/// <summary>
/// Holds the web server back until this node is an Up member of its cluster and the conversations' shard coordinator
/// knows a region to place entities on, so the first requests do not time out (503) against shard regions that cannot
/// place entities yet. Registered after Akka, before Kestrel starts. Each wait is bounded by <see cref="Cap"/>; past it
/// the node serves anyway and <c>/health/ready</c> reports the cluster state.
/// </summary>
public sealed class ClusterReadiness(ActorSystem system, IServiceProvider services, ILogger<ClusterReadiness> logger) : IHostedService
{
    public static readonly TimeSpan Cap = TimeSpan.FromSeconds(60);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var cluster = Cluster.Get(system);
        if (cluster.SelfMember.Status != MemberStatus.Up)
        {
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
                return;
            }
        }
        await CoordinatorKnowsARegionAsync(cancellationToken);
    }

    /// <summary>
    /// Asks the conversation region for the coordinator's regions until it names one: a region that does not know its
    /// coordinator yet answers an empty set at once, so this returns as soon as entities can be placed.
    /// </summary>
    private async Task CoordinatorKnowsARegionAsync(CancellationToken ct)
    {
        if (services.GetService<ActorRegistry>() is not { } registry || !registry.TryGet<ConversationRegion>(out var region)) return;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < Cap)
        {
            try
            {
                if (await region.Ask<CurrentRegions>(GetCurrentRegions.Instance, TimeSpan.FromSeconds(5), ct) is { Regions.Count: > 0 }) return;
            }
            catch (AskTimeoutException)
            {
                // The coordinator is starting (or busy): ask again.
            }
            await Task.Delay(200, ct);
        }
        logger.LogWarning("The conversations' shard coordinator named no region after {Cap}; serving anyway", Cap);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
