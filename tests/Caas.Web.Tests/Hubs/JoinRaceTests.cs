using Caas.Web.Hubs;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Web.Tests.Hubs;

/// <summary>
/// A kick, ban or removal that races a JoinRoom: removal wins in every order. The join is held at a chosen stage
/// (<see cref="RoomRelay.JoinProbe"/>) while the removal goes through and the room's feed handles it, so each order is
/// driven on purpose, many times, rather than hoped for.
/// </summary>
public sealed class JoinRaceTests(HubNode node) : IClassFixture<HubNode>
{
    private static readonly (string Action, string Event)[] Removals =
        [("remove", "memberRemoved"), ("kick", "userKicked"), ("ban", "userBanned")];

    [Theory(Timeout = 300_000)]
    [InlineData(JoinStage.Checked)]
    [InlineData(JoinStage.Registered)]
    public async Task A_removal_that_lands_while_a_join_is_in_flight_wins(JoinStage stage)
    {
        var tenant = "t-race-" + stage.ToString().ToLowerInvariant();
        using var rest = node.Rest(tenant, "alice");
        var room = await rest.CreateGroupAsync("carol");
        await using var alice = await node.ConnectAsync(tenant, "alice");
        await using var carol = await node.ConnectAsync(tenant, "carol");
        await alice.JoinAsync(room);
        await carol.JoinAsync(room);
        var relay = node.App.Services.GetRequiredService<RoomRelay>();

        for (var i = 0; i < 12; i++)
        {
            var (action, eventName) = Removals[i % Removals.Length];
            var user = $"u{i}";
            Assert.Equal(201, (await rest.ApiPost($"/v1/conversations/{room}/members", new { user_id = user })).Status);
            await using var victim = await node.ConnectAsync(tenant, user);

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            relay.JoinProbe = (at, connection, _) =>
            {
                if (at != stage || connection.Caller.UserId != user) return Task.CompletedTask;
                reached.TrySetResult();
                return release.Task;
            };
            try
            {
                var join = victim.Call("JoinRoom", new { conversation_id = room });
                await reached.Task.WaitAsync(TimeSpan.FromSeconds(30));

                await RemoveAsync(rest, room, user, action);
                // Carol's copy of the event comes from the same feed: once she has it, the feed has handled the removal.
                await carol.NextAsync(eventName, e => e.Str("user_id") == user, TimeSpan.FromSeconds(30));
                release.TrySetResult();

                var answer = await join;
                Assert.False(answer.GetProperty("success").GetBoolean(), $"{action} at {stage}, round {i}: the join must lose: {answer}");
                Assert.Equal("not_found", answer.GetProperty("error").Str("code"));
            }
            finally
            {
                release.TrySetResult();
                relay.JoinProbe = null;
            }
            await AssertOutOfTheRoomAsync(room, tenant, user, victim, alice, carol, $"{action} at {stage}, round {i}");
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task Joins_and_removals_sent_at_once_never_leave_the_socket_in_the_room()
    {
        const string tenant = "t-race-free";
        using var rest = node.Rest(tenant, "alice");
        var room = await rest.CreateGroupAsync("carol");
        await using var alice = await node.ConnectAsync(tenant, "alice");
        await using var carol = await node.ConnectAsync(tenant, "carol");
        await alice.JoinAsync(room);
        await carol.JoinAsync(room);

        for (var i = 0; i < 15; i++)
        {
            var (action, eventName) = Removals[i % Removals.Length];
            var user = $"f{i}";
            Assert.Equal(201, (await rest.ApiPost($"/v1/conversations/{room}/members", new { user_id = user })).Status);
            await using var victim = await node.ConnectAsync(tenant, user);
            var join = victim.Call("JoinRoom", new { conversation_id = room });
            await RemoveAsync(rest, room, user, action);
            await join;
            await carol.NextAsync(eventName, e => e.Str("user_id") == user, TimeSpan.FromSeconds(30));
            await AssertOutOfTheRoomAsync(room, tenant, user, victim, alice, carol, $"{action}, round {i}");
        }
    }

    private static async Task RemoveAsync(HttpClient rest, string room, string user, string action)
    {
        var status = action == "remove"
            ? (await rest.ApiDelete($"/v1/conversations/{room}/members/{user}")).Status
            : (await rest.ApiPost($"/v1/conversations/{room}/moderation/{action}", new { user_id = user, reason = "race" })).Status;
        Assert.True(status is 200 or 204, $"{action} answered {status}");
    }

    /// <summary>The node holds none of the user's sockets in the room, and a message sent after does not reach them.</summary>
    private async Task AssertOutOfTheRoomAsync(string room, string tenant, string user, HubClient victim, HubClient alice, HubClient carol, string what)
    {
        var connections = node.App.Services.GetRequiredService<ChatConnections>();
        Assert.All(connections.OfUser(tenant, user), c => Assert.False(c.Rooms.ContainsKey(room), $"{what}: the socket is still in the room"));
        var marker = $"after {what}";
        await alice.SendAsync(room, marker);
        await carol.NextAsync("newMessage:" + room, e => e.GetProperty("content").Str("text") == marker);
        // One round trip on the victim's own connection after carol has the message: a copy for it would be queued first.
        await victim.Fails("Typing", new { conversation_id = room }, "not_found");
        Assert.DoesNotContain(victim.All, e => e.Name == "newMessage" && e.Payload.Str("conversation_id") == room);
    }
}
