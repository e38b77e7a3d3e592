using Akka.Actor;
using Akka.Cluster;
using Caas.Node;
using Caas.Tests.Shared;
using Caas.Web.Tests.Hubs;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Xunit;
using Xunit.Abstractions;

namespace Caas.Web.Tests;

/// <summary>
/// Two nodes of one cluster: two NodeHost apps in this process, real remoting on 127.0.0.1, one PostgreSQL database.
/// They start one at a time (each migrates and creates the read-model schema) and are both Up before a test runs.
/// A test may take a node out of <see cref="Nodes"/> to stop it itself.
/// </summary>
public sealed class TwoNodeCluster(ITestOutputHelper output) : IAsyncDisposable
{
    public List<WebApplication> Nodes { get; } = [];

    public static async Task<TwoNodeCluster> StartAsync(string database, ITestOutputHelper output, string extraHocon = "")
    {
        var cluster = new TwoNodeCluster(output);
        try
        {
            await cluster.StartNodesAsync(database, extraHocon);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private async Task StartNodesAsync(string database, string extraHocon)
    {
        var postgres = TestDatabases.NewPostgresDatabase(database);
        var ports = new[] { HubNode.FreeTcpPort(), HubNode.FreeTcpPort() };
        var seed = $"akka.tcp://{NodeHost.SystemName}@127.0.0.1:{ports[0]}";
        foreach (var port in ports)
            Nodes.Add(await HubNode.StartAsync(new NodeOptions
            {
                Postgres = postgres,
                Urls = "http://127.0.0.1:0",
                JwtSecret = HubNode.Secret,
                MasterKey = TestDatabases.MasterKey,
                LogLevel = "Warning",
                SeedNodes = [seed],
                ExtraHocon = $"""
                    akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
                    akka.remote.dot-netty.tcp.port = {port}
                    akka.loglevel = WARNING
                    akka.cluster.sharding.retry-interval = 500ms
                    {extraHocon}
                    """,
            }, new Dictionary<string, string?>()));
        // A condition wait with a bound a loaded machine does not reach.
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (Nodes.Any(n => Cluster.Get(n.Services.GetRequiredService<ActorSystem>()).State.Members.Count(m => m.Status == MemberStatus.Up) < 2))
        {
            Assert.True(DateTime.UtcNow < deadline, "two members Up on both nodes within 2 minutes");
            await Task.Delay(100);
        }
    }

    public Uri Address(int node) => new(Nodes[node].Urls.First());

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Enumerable.Reverse(Nodes))
        {
            try
            {
                await node.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
                await node.DisposeAsync();
            }
            catch (Exception e)
            {
                output.WriteLine($"a node did not stop cleanly: {e.Message}");
            }
        }
    }
}
