using Caas.FaultTests.Harness;
using Xunit.Abstractions;

namespace Caas.FaultTests;

/// <summary>
/// Faults under sustained load (REST, hub, Kafka) on a three-node cluster of separate processes, each followed by the
/// full check of every acknowledged message (<see cref="Verifier"/>). scripts/chaos.sh runs the same scenarios longer.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class FaultScenarioTests(FaultCluster cluster, ITestOutputHelper output)
{
    private const int Conversations = 4;

    /// <summary>
    /// Problems the current code has that other parts of issue #12 fix; reported in the output, not failed on, so
    /// that the other checks (lost, duplicated, seq, acknowledged seq, sender) still guard every scenario. Remove an
    /// entry once its fix is merged. None now: Kafka per-conversation order (<see cref="Verifier.KafkaFifo"/>) is fixed
    /// and checked like the rest.
    /// </summary>
    private static readonly string[] KnownProductBugs = [];

    [Fact(Timeout = 15 * 60_000)]
    public Task A_node_killed_with_SIGKILL_under_load_and_restarted_loses_nothing() =>
        RunAsync("node SIGKILL", "kill", async _ =>
        {
            var node = cluster.Nodes[1];
            var t0 = DateTime.UtcNow;
            cluster.Note($"SIGKILL node1 (pid {node.Pid})");
            node.Kill9();
            // The harness restarts it; it is back once it answers ready again.
            await cluster.WaitReadyAsync(node, TimeSpan.FromMinutes(4));
            return t0;
        });

    [Fact(Timeout = 15 * 60_000)]
    public Task PostgreSQL_restarted_immediate_under_load_loses_nothing() =>
        RunAsync("PostgreSQL restart -m immediate", "pg", async _ =>
        {
            var t0 = DateTime.UtcNow;
            cluster.Note("pg_ctl restart -m immediate");
            await cluster.Services.RestartPostgresImmediateAsync();
            cluster.Note("PostgreSQL is back");
            return t0;
        });

    [Fact(Timeout = 15 * 60_000)]
    public Task The_Kafka_broker_killed_and_restarted_under_load_loses_nothing() =>
        RunAsync("Kafka broker kill -9", "kafka", async _ =>
        {
            var t0 = DateTime.UtcNow;
            cluster.Note("kill -9 the Kafka broker");
            cluster.Services.KillKafka();
            await Task.Delay(TimeSpan.FromSeconds(5));
            await cluster.Services.StartKafkaAsync();
            cluster.Note("Kafka broker is back");
            return t0;
        });

    [Fact(Timeout = 15 * 60_000)]
    public Task A_node_frozen_past_the_failure_detector_is_downed_leaves_and_rejoins_and_nothing_is_lost() =>
        RunAsync("node SIGSTOP past the failure detector", "freeze", async _ =>
        {
            var node = cluster.Nodes[2];
            var others = cluster.Nodes.Where(n => n != node).ToList();
            var exitsBefore = node.ExitCodes.Count;
            var pid = node.Pid;
            var t0 = DateTime.UtcNow;
            cluster.Note($"SIGSTOP node2 (pid {pid})");
            node.Freeze();
            // The others must see it unreachable and the split-brain resolver down it.
            await WaitRemovedAsync(others, node, TimeSpan.FromMinutes(3));
            // The leader removes a downed member at its next gossip round; give it that before waking the node.
            await Task.Delay(TimeSpan.FromSeconds(3));
            cluster.Note("node2 was downed by the others; SIGCONT");
            node.Thaw();
            // Downed, it must shut down on its own (run-coordinated-shutdown-when-down) and the harness start it again.
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
            while (node.ExitCodes.Count == exitsBefore && DateTime.UtcNow < deadline) await Task.Delay(500);
            if (node.ExitCodes.Count == exitsBefore)
            {
                cluster.Note("node2 did not exit within 2 minutes of SIGCONT after being downed; killing it");
                _frozenNodeDidNotLeave = true;
                node.Kill9();
            }
            else
            {
                _frozenNodeExit = node.ExitCodes[exitsBefore];
            }
            await cluster.WaitReadyAsync(node, TimeSpan.FromMinutes(4));
            return t0;
        }, extraChecks: problems =>
        {
            if (_frozenNodeDidNotLeave) problems.Add("the downed node did not leave (exit) after SIGCONT");
            else if (_frozenNodeExit == 0) problems.Add("the downed node exited with 0; a supervisor needs a non-zero exit to restart it");
            output.WriteLine($"the downed node exited with {_frozenNodeExit}");
        });

    private bool _frozenNodeDidNotLeave;
    private int? _frozenNodeExit;

    /// <summary>
    /// Until one of <paramref name="observers"/> logs the split-brain resolver's decision to down <paramref name="node"/>
    /// (Akka logs it as a warning: "SBR took decision DownUnreachable and is downing [address]").
    /// </summary>
    private static async Task WaitRemovedAsync(List<NodeProcess> observers, NodeProcess node, TimeSpan within)
    {
        var port = $":{node.RemotePort}";
        var before = observers.ToDictionary(o => o, o => { lock (o.DowningLines) return o.DowningLines.Count; });
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            foreach (var o in observers)
                lock (o.DowningLines)
                    if (o.DowningLines.Skip(before[o]).Any(l => l.Contains("SBR took decision", StringComparison.Ordinal) && l.Contains(port, StringComparison.Ordinal)))
                        return;
            await Task.Delay(500);
        }
        throw new TimeoutException($"the split-brain resolver did not down node{node.Index} within {within}");
    }

    private async Task RunAsync(string scenario, string tenantPrefix, Func<int, Task<DateTime>> fault, Action<List<string>>? extraChecks = null)
    {
        var settings = cluster.Settings;
        var tenant = $"{tenantPrefix}-{Guid.NewGuid():N}"[..(tenantPrefix.Length + 9)];
        await using var load = new Load(cluster, tenant, Conversations);
        try
        {
            await cluster.AllReadyAsync(TimeSpan.FromMinutes(5));
            await load.SetupAsync();
            load.Start(settings.Rate);
            await Task.Delay(settings.LoadBefore);
            var faults = new List<DateTime>();
            for (var i = 0; i < settings.Faults; i++)
            {
                faults.Add(await fault(i));
                await Task.Delay(settings.LoadAfter);
            }
            cluster.Note($"{scenario}: stopping the load");
            await load.StopAsync();
            cluster.Note($"{scenario}: load stopped; verifying");
            var result = await Verifier.VerifyAsync(cluster, load, scenario, faults, output);
            var problems = result.Problems.Where(p => !KnownProductBugs.Any(k => p.StartsWith(k, StringComparison.Ordinal))).ToList();
            foreach (var known in result.Problems.Except(problems)) output.WriteLine("KNOWN PRODUCT BUG (not failed on): " + known);
            extraChecks?.Invoke(problems);
            Assert.True(result.Acknowledged > 0, "nothing was acknowledged");
            Assert.True(problems.Count == 0, $"{problems.Count} problems:\n{string.Join("\n", problems.Take(30))}");
            Assert.Equal(0, result.Lost);
            Assert.Equal(0, result.Duplicated);
        }
        finally
        {
            cluster.Dump(output);
        }
    }
}
