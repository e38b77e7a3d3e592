using System.Text.Json;
using Caas.Node;
using Caas.Tests.Shared;
using Caas.Web.Tests.Hubs;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Turn;

/// <summary>An operator's change on one node of a cluster is effective on the other (both read the operational store).</summary>
[Collection("coturn")]
public sealed class TurnTwoNodeTests : IAsyncLifetime
{
    private readonly List<WebApplication> _nodes = [];

    public async Task InitializeAsync()
    {
        var postgres = TestDatabases.NewPostgresDatabase("turn2");
        var ports = new[] { HubNode.FreeTcpPort(), HubNode.FreeTcpPort() };
        var seed = $"akka.tcp://{NodeHost.SystemName}@127.0.0.1:{ports[0]}";
        foreach (var port in ports)
        {
            var app = await NodeHost.BuildAsync(new NodeOptions
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
                    """,
            }, b => b.Services.AddSingleton(TurnNodeFixture.Settings));
            await app.StartAsync().WaitAsync(TimeSpan.FromMinutes(2));
            _nodes.Add(app);
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var node in Enumerable.Reverse(_nodes))
        {
            await node.StopAsync().WaitAsync(TimeSpan.FromMinutes(1));
            await node.DisposeAsync();
        }
    }

    private HttpClient Client(int node, string user, params string[] roles)
    {
        var client = new HttpClient { BaseAddress = new Uri(_nodes[node].Urls.First()), Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", new Caas.Web.Auth.JwtSettings(HubNode.Secret, null, null, null).Issue("t1", user, roles));
        return client;
    }

    private static IEnumerable<string> Urls(JsonElement list) =>
        list.GetProperty("ice_servers").EnumerateArray().Select(s => s.GetProperty("urls")[0].GetString()!);

    [Fact]
    public async Task A_server_added_and_drained_on_one_node_changes_the_other_nodes_list()
    {
        var extra = $"turn:127.0.0.1:{CoturnInstances.Port(1)}?transport=tcp";
        var added = await Client(0, "ops", "operator").ApiPost("/v1/admin/turn/servers", new { url = extra });
        Assert.Equal(201, added.Status);
        var id = added.Body.Str("id");

        var other = Client(1, "alice");
        await CoturnInstances.EventuallyAsync(() => other.ApiGet("/v1/webrtc/ice-servers"), r => Urls(r.Body).Contains(extra), "listed on the other node");
        Assert.Equal(200, (await Client(1, "ops", "operator").ApiPost($"/v1/admin/turn/servers/{id}/drain", null)).Status);
        await CoturnInstances.EventuallyAsync(() => Client(0, "bob").ApiGet("/v1/webrtc/ice-servers"),
            r => !Urls(r.Body).Contains(extra) && Urls(r.Body).Count() == 2, "drained on the first node");
    }
}
