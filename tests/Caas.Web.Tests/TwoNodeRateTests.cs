using System.Net.Http.Json;
using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using Caas.Node;
using Caas.Tests.Shared;
using Caas.Web.Tests.Hubs;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Caas.Web.Tests;

/// <summary>
/// Two nodes of one cluster (two NodeHost apps in this process, real remoting, one PostgreSQL), each pipeline holding
/// its own lease of a user's message slots: the user's 60 a minute hold whichever node each message reaches.
/// </summary>
public sealed class TwoNodeRateTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Tenant = "t-rate2";
    private TwoNodeCluster? _cluster;
    private List<WebApplication> _nodes => _cluster!.Nodes;
    private readonly Caas.Web.Auth.JwtSettings _jwt = new(HubNode.Secret, null, null, null);

    public async Task InitializeAsync() => _cluster = await TwoNodeCluster.StartAsync("rate2", output, "caas.pipeline.ask-timeout = 30s\ncaas.rate-leases.recall-timeout = 20s");

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    private HttpClient Client(int node, string user)
    {
        var client = new HttpClient { BaseAddress = new Uri(_nodes[node].Urls.First()), Timeout = TimeSpan.FromSeconds(90) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", _jwt.Issue(Tenant, user));
        return client;
    }

    [Fact(Timeout = 240_000)]
    public async Task Sixty_messages_a_minute_across_two_nodes_then_the_61st_is_429_on_either()
    {
        // Users whose messages reach the nodes in different patterns; each user has one session entity somewhere.
        var patterns = new Dictionary<string, string>
        {
            ["alice"] = string.Concat(Enumerable.Repeat("01", 30)),
            ["bob"] = new string('0', 45) + new string('1', 15),
            ["carol"] = string.Concat(new Random(5).GetItems("01".ToCharArray(), 60)),
        };
        await Task.WhenAll(patterns.Select(async p =>
        {
            var (user, pattern) = (p.Key, p.Value);
            using var a = Client(0, user);
            using var b = Client(1, user);
            var room = await a.CreateGroupAsync();
            for (var i = 0; i < 60; i++) await (pattern[i] == '0' ? a : b).PostMessageAsync(room, $"m{i}", $"{user}-{i}");
            // a retry of an accepted message is answered, and takes no slot
            await b.PostMessageAsync(room, "m0", $"{user}-0", expect: 200);

            foreach (var via in new[] { a, b })
            {
                using var response = await via.PostAsJsonAsync("/v1/messages", new { conversation_id = room, content = new { type = "text", text = "61" } });
                Assert.Equal(429, (int)response.StatusCode);
                Assert.True(response.Headers.RetryAfter?.Delta?.TotalSeconds >= 1, $"{user}: {response.Headers.RetryAfter}");
                Assert.Equal("rate_limited", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Code());
            }
            Assert.Equal(60, (await a.ApiGet($"/v1/conversations/{room}")).Body.GetProperty("last_seq").GetInt64());
        }));
    }
}
