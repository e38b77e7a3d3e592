using System.Text.Json;
using Caas.Web.Tests.Hubs;
using Caas.Web.Turn;
using Microsoft.AspNetCore.SignalR.Client;

namespace Caas.Web.Tests.Turn;

/// <summary>
/// TURN against the real coturn instances scripts/test.sh starts: the health-check client, credentials from the API
/// allocating with coturn's own client (and refused when expired, altered or made with another secret), failover,
/// and the operator's server list.
/// </summary>
[Collection("coturn")]
public sealed class CoturnTests(TurnNodeFixture node) : IClassFixture<TurnNodeFixture>
{
    private static TurnUri Instance(int n, string transport = "udp") =>
        TurnUri.TryParse($"turn:127.0.0.1:{CoturnInstances.Port(n)}?transport={transport}", out _)!;

    [Theory]
    [InlineData("udp")]
    [InlineData("tcp")]
    public async Task The_client_allocates_and_releases_with_the_secret_and_is_refused_with_another(string transport)
    {
        var ok = await StunClient.ProbeAsync(Instance(1, transport), CoturnInstances.Secret, TimeSpan.FromSeconds(30));
        Assert.True(ok.Healthy, ok.Error);
        Assert.NotNull(ok.Mapped);
        Assert.NotNull(ok.Relayed);

        var wrong = await StunClient.ProbeAsync(Instance(1, transport), CoturnInstances.Secret + "x", TimeSpan.FromSeconds(30));
        Assert.False(wrong.Healthy);
        Assert.StartsWith("allocate answered 401", wrong.Error);

        var stun = await StunClient.ProbeAsync(TurnUri.TryParse($"stun:127.0.0.1:{CoturnInstances.Port(2)}", out _)!, null, TimeSpan.FromSeconds(30));
        Assert.True(stun.Healthy, stun.Error);
    }

    [Fact]
    public async Task Credentials_from_the_api_allocate_and_bad_ones_are_refused_by_coturn()
    {
        var list = await ListAsync("alice");
        var turn = list.GetProperty("ice_servers").EnumerateArray().First(s => s.GetProperty("urls")[0].GetString()!.Contains($":{CoturnInstances.Port(1)}"));
        var username = turn.Str("username");
        var credential = turn.Str("credential");
        Assert.EndsWith(":alice", username);
        var expiry = long.Parse(username.Split(':')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(expiry - DateTimeOffset.UtcNow.ToUnixTimeSeconds(), 3000, 3700);
        Assert.Equal(3600, list.GetProperty("ttl_seconds").GetInt64());
        Assert.False(list.GetRawText().Contains(CoturnInstances.Secret, StringComparison.Ordinal));

        Assert.Equal(0, await CoturnInstances.UclientAsync(1, username, credential));

        var altered = credential[..^2] + (credential[^2] == 'A' ? "B" : "A") + credential[^1];
        Assert.NotEqual(0, await CoturnInstances.UclientAsync(1, username, altered));
        var (expiredUser, expiredCredential) = TurnCredentials.Mint(CoturnInstances.Secret, "alice", DateTimeOffset.UtcNow.AddMinutes(-1));
        Assert.NotEqual(0, await CoturnInstances.UclientAsync(1, expiredUser, expiredCredential));
        var (otherUser, otherCredential) = TurnCredentials.Mint("another-secret", "alice", DateTimeOffset.UtcNow.AddHours(1));
        Assert.NotEqual(0, await CoturnInstances.UclientAsync(1, otherUser, otherCredential));
        // Someone else's username with this credential: the HMAC covers the username.
        Assert.NotEqual(0, await CoturnInstances.UclientAsync(1, username.Replace(":alice", ":mallory"), credential));
    }

    [Fact]
    public async Task The_hub_hands_out_the_same_list()
    {
        await Listed(1, 2);
        await using var client = await HubClient.ConnectAsync(node.BaseAddress, node.Jwt.Issue("t1", "bob", []));
        var reply = await client.Connection.InvokeAsync<JsonElement>("GetIceServers").WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(reply.GetProperty("success").GetBoolean(), reply.ToString());
        var servers = reply.GetProperty("ice_servers").EnumerateArray().ToList();
        Assert.Equal(2, servers.Count);
        Assert.All(servers, s => Assert.EndsWith(":bob", s.Str("username")));
        Assert.Equal(0, await CoturnInstances.UclientAsync(2, servers[1].Str("username"), servers[1].Str("credential")));
    }

    [Fact]
    public async Task A_stopped_server_leaves_the_list_and_returns_when_it_is_up_again()
    {
        await Listed(1, 2);
        try
        {
            await CoturnInstances.StopAsync(1);
            var without = await Listed(2);
            Assert.Null(without.GetProperty("warning").GetString());
            var admin = await node.Client("t1", "ops", "operator").ApiGet("/v1/admin/turn/servers");
            var first = admin.Body.GetProperty("items").EnumerateArray().First(i => i.Str("url") == CoturnInstances.Servers[0]);
            Assert.False(first.GetProperty("healthy").GetBoolean());
            Assert.NotNull(first.GetProperty("error").GetString());

            await CoturnInstances.StopAsync(2);
            var none = await Listed();
            Assert.Contains("No TURN server is healthy", none.GetProperty("warning").GetString());
        }
        finally
        {
            await CoturnInstances.StartAsync(1);
            await CoturnInstances.StartAsync(2);
        }
        var back = await Listed(1, 2);
        Assert.Null(back.GetProperty("warning").GetString());
    }

    [Fact]
    public async Task An_operator_adds_drains_activates_and_deletes_servers()
    {
        await Listed(1, 2);
        var ops = node.Client("t1", "ops", "operator");
        var tcpUrl = Instance(2, "tcp").Text;

        // Refusals first: they change nothing.
        Assert.Equal(403, (await node.Client("t1", "admin1", "admin").ApiGet("/v1/admin/turn/servers")).Status);
        Assert.Equal(403, (await node.Client("t1", "admin1", "admin").ApiPost("/v1/admin/turn/servers", new { url = tcpUrl })).Status);
        var bad = await ops.ApiPost("/v1/admin/turn/servers", new { url = "http://nope" });
        Assert.Equal((400, "validation_failed"), (bad.Status, bad.Body.Code()));
        var malformed = await ops.ApiPost("/v1/admin/turn/servers", "{");
        Assert.Equal((400, "malformed_json"), (malformed.Status, malformed.Body.Code()));
        var clash = await ops.ApiPost("/v1/admin/turn/servers", new { url = CoturnInstances.Servers[0] });
        Assert.Equal((409, "conflict"), (clash.Status, clash.Body.Code()));
        Assert.Equal(404, (await ops.ApiPost("/v1/admin/turn/servers/ts_nope/drain", null)).Status);

        // Its own secret (the right one, given explicitly) is write-only.
        var added = await ops.ApiPost("/v1/admin/turn/servers", new { url = tcpUrl, secret = CoturnInstances.Secret });
        Assert.Equal(201, added.Status);
        var id = added.Body.Str("id");
        Assert.True(added.Body.GetProperty("has_own_secret").GetBoolean());
        Assert.Equal(409, (await ops.ApiPost("/v1/admin/turn/servers", new { url = tcpUrl })).Status);
        try
        {
            await Listed(1, 2, tcpUrl);
            var listing = await ops.ApiGet("/v1/admin/turn/servers");
            Assert.DoesNotContain(CoturnInstances.Secret, listing.Body.GetRawText());
            Assert.Contains(listing.Body.GetProperty("items").EnumerateArray(), i => i.Str("id") == id && i.GetProperty("healthy").GetBoolean());

            Assert.Equal("draining", (await ops.ApiPost($"/v1/admin/turn/servers/{id}/drain", null)).Body.Str("state"));
            await Listed(1, 2);
            Assert.Equal(200, (await ops.ApiPost($"/v1/admin/turn/servers/{id}/activate", null)).Status);
            await Listed(1, 2, tcpUrl);

            // A configured server: drained, then deleted (it stays listed to the operator as deleted), then back.
            var configured = TurnServers.ConfigId(CoturnInstances.Servers[1]);
            Assert.Equal(200, (await ops.ApiPost($"/v1/admin/turn/servers/{configured}/drain", null)).Status);
            await Listed(1, 0, tcpUrl);
            Assert.Equal(204, (await ops.ApiDelete($"/v1/admin/turn/servers/{configured}")).Status);
            await CoturnInstances.EventuallyAsync(() => ops.ApiGet("/v1/admin/turn/servers"),
                r => r.Body.GetProperty("items").EnumerateArray().Any(i => i.Str("id") == configured && i.Str("state") == "deleted"), "shown as deleted");
            Assert.Equal(200, (await ops.ApiPost($"/v1/admin/turn/servers/{configured}/activate", null)).Status);
            await Listed(1, 2, tcpUrl);

            Assert.Equal(204, (await ops.ApiDelete($"/v1/admin/turn/servers/{id}")).Status);
            await Listed(1, 2);
            Assert.Equal(404, (await ops.ApiDelete($"/v1/admin/turn/servers/{id}")).Status);
        }
        finally
        {
            await ops.ApiDelete($"/v1/admin/turn/servers/{id}");
            await ops.ApiPost($"/v1/admin/turn/servers/{TurnServers.ConfigId(CoturnInstances.Servers[1])}/activate", null);
        }
    }

    private async Task<JsonElement> ListAsync(string user)
    {
        var (status, body) = await node.Client("t1", user).ApiGet("/v1/webrtc/ice-servers");
        Assert.Equal(200, status);
        return body;
    }

    /// <summary>
    /// Waits until the ICE list holds exactly the given instances (1, 2; 0 is skipped) and extra URLs, and returns it.
    /// </summary>
    private async Task<JsonElement> Listed(params object[] expected)
    {
        var want = expected.Select(e => e switch
        {
            int n when n > 0 => CoturnInstances.Servers[n - 1],
            string url => url,
            _ => null,
        }).OfType<string>().OrderBy(u => u, StringComparer.Ordinal).ToList();
        return await CoturnInstances.EventuallyAsync(() => ListAsync("alice"),
            body => body.GetProperty("ice_servers").EnumerateArray().Select(s => s.GetProperty("urls")[0].GetString()!)
                .OrderBy(u => u, StringComparer.Ordinal).SequenceEqual(want),
            "listing " + string.Join(", ", want));
    }
}
