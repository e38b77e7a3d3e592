using System.Data.Common;
using System.Diagnostics;
using System.Text.Json;
using Caas.Node;
using Microsoft.Data.Sqlite;
using Npgsql;
using Caas.Tests.Shared;
using Xunit.Abstractions;

namespace Caas.IntegrationTests;

/// <summary>
/// Stop a node, start a new one on the same storage: every conversation, member, message, edit, reaction,
/// moderation action, profile and tenant setting is there, and the sequence of a conversation goes on.
/// </summary>
public sealed class RestartTests(ITestOutputHelper output)
{
    private const string Tenant = "acme";

    /// <summary>What a caller can read of the node's state, captured through REST before the stop and after the start.</summary>
    private sealed record Observed(
        JsonElement Room, JsonElement Direct, List<JsonElement> RoomMessages, List<JsonElement> DirectMessages,
        JsonElement EditedMessage, JsonElement ModerationLog, JsonElement Profile, JsonElement ConversationList, JsonElement Settings);

    [Theory(Timeout = 90_000)]
    [InlineData("sqlite", 1000)]
    [InlineData("sqlite", 4)]
    [InlineData("postgres", 4)]
    public async Task A_restarted_node_has_everything_and_the_sequence_goes_on(string storage, int snapshotEvery)
    {
        var clock = Stopwatch.StartNew();
        // A small snapshot interval makes recovery go through a snapshot plus the events after it.
        var options = new NodeOptions
        {
            DataDir = TestDatabases.NewSqliteDirectory(),
            Postgres = storage == "postgres" ? TestDatabases.NewPostgresDatabase("restart") : null,
            LogLevel = "Warning",
            ExtraHocon = $"caas.entities.snapshot-every = {snapshotEvery}\nakka.loglevel = WARNING",
        };

        string room, direct, edited, deleted, firstOfOlive;
        Observed before;
        await using (var node = await TestNode.StartAsync("first", options))
        {
            var olive = node.As(Tenant, "olive");
            var bob = node.As(Tenant, "bob");
            var carol = node.As(Tenant, "carol");
            var dave = node.As(Tenant, "dave");
            var admin = node.As(Tenant, "root", "admin");

            room = await olive.CreateGroupAsync("Restart room", "bob", "dave", "erin");
            await olive.Expect(201, HttpMethod.Post, $"/v1/conversations/{room}/members", new { user_id = "carol", role = "moderator" });
            await olive.Expect(200, HttpMethod.Put, $"/v1/conversations/{room}", new { title = "Renamed room", metadata = new { topic = "restarts" } });
            direct = (await olive.Expect(201, HttpMethod.Post, "/v1/conversations", new { type = "direct", members = new[] { "bob" } })).Str("id");

            var ids = new List<string>();
            for (var i = 1; i <= 5; i++) ids.Add((await olive.PostMessageAsync(room, $"olive says {i}", $"olive-{i}")).Str("message_id"));
            for (var i = 1; i <= 3; i++) ids.Add((await bob.PostMessageAsync(room, $"bob says {i}", $"bob-{i}")).Str("message_id"));
            await olive.PostMessageAsync(direct, "psst", "direct-1");
            await bob.PostMessageAsync(direct, "what?", "direct-2");
            firstOfOlive = ids[0];
            edited = ids[1];
            deleted = ids[6];

            await olive.Expect(200, HttpMethod.Put, $"/v1/messages/{edited}", new { content = new { type = "text", text = "olive says 2, edited" } });
            await olive.Expect(200, HttpMethod.Put, $"/v1/messages/{edited}", new { content = new { type = "text", text = "olive says 2, edited twice" } });
            await bob.Expect(200, HttpMethod.Delete, $"/v1/messages/{deleted}");
            await bob.Expect(200, HttpMethod.Post, $"/v1/messages/{firstOfOlive}/reactions", new { reaction = "+1" });
            await dave.Expect(200, HttpMethod.Post, $"/v1/messages/{firstOfOlive}/reactions", new { reaction = "heart" });
            await carol.Expect(200, HttpMethod.Post, $"/v1/messages/{firstOfOlive}/reactions", new { reaction = "+1" });
            await carol.Expect(200, HttpMethod.Delete, $"/v1/messages/{firstOfOlive}/reactions/+1");

            await carol.Expect(200, HttpMethod.Post, $"/v1/conversations/{room}/moderation/mute", new { user_id = "dave", duration_seconds = 3600, reason = "too loud" });
            await olive.Expect(200, HttpMethod.Post, $"/v1/conversations/{room}/moderation/ban", new { user_id = "erin", reason = "spam" });
            await olive.Expect(200, HttpMethod.Put, "/v1/users/me", new { display_name = "Olive Oyl", time_zone = "Europe/Paris", locale = "fr-FR" });
            await admin.Expect(200, HttpMethod.Put, "/v1/admin/tenant/settings", new { message_rate_per_minute = 90, max_message_chars = 2000 });

            // Edits, deletes and reactions reach the read model asynchronously; wait for them before taking the picture.
            await Eventually.HoldsAsync(async () =>
            {
                var messages = await olive.AllMessagesAsync(room);
                var log = await olive.Expect(200, HttpMethod.Get, $"/v1/conversations/{room}/moderation/log");
                return messages.Count == 8
                       && messages.Single(m => m.Str("message_id") == edited).GetProperty("versions").GetArrayLength() == 2
                       && messages.Single(m => m.Str("message_id") == deleted).GetProperty("deleted").GetBoolean()
                       && messages.Single(m => m.Str("message_id") == firstOfOlive).GetProperty("reactions").EnumerateObject().Count() == 2
                       && log.GetProperty("items").GetArrayLength() == 2;
            }, TimeSpan.FromSeconds(10), "the read model has every change");

            before = await ObserveAsync(node, room, direct, edited);
            Assert.Equal("olive says 2, edited twice", before.EditedMessage.GetProperty("content").Str("text"));
            Assert.Equal(8, before.Room.GetProperty("last_seq").GetInt64());
            output.WriteLine($"{storage}: written in {clock.Elapsed.TotalSeconds:0.0} s");
        }
        output.WriteLine($"{storage}: stopped at {clock.Elapsed.TotalSeconds:0.0} s");
        var snapshots = await SnapshotCountAsync(options);
        if (snapshotEvery < 10) Assert.True(snapshots > 0, "the entities should have saved snapshots to recover from");
        else Assert.Equal(0, snapshots);

        await using (var node = await TestNode.StartAsync("restarted", options))
        {
            var after = await ObserveAsync(node, room, direct, edited);
            JsonAssert.Same(before.Room, after.Room, "the group conversation");
            JsonAssert.Same(before.Direct, after.Direct, "the direct conversation");
            Assert.Equal(before.RoomMessages.Count, after.RoomMessages.Count);
            for (var i = 0; i < before.RoomMessages.Count; i++) JsonAssert.Same(before.RoomMessages[i], after.RoomMessages[i], $"message {i + 1}");
            Assert.Equal(before.DirectMessages.Count, after.DirectMessages.Count);
            for (var i = 0; i < before.DirectMessages.Count; i++) JsonAssert.Same(before.DirectMessages[i], after.DirectMessages[i], $"direct message {i + 1}");
            JsonAssert.Same(before.EditedMessage, after.EditedMessage, "the edited message");
            JsonAssert.Same(before.ModerationLog, after.ModerationLog, "the moderation log");
            JsonAssert.Same(before.Profile, after.Profile, "the profile");
            JsonAssert.Same(before.ConversationList, after.ConversationList, "olive's conversation list");
            JsonAssert.Same(before.Settings, after.Settings, "the tenant settings");

            var olive = node.As(Tenant, "olive");
            var bob = node.As(Tenant, "bob");

            // The entity recovered its state, not just the read model: the sequence, the idempotency index, the
            // authorship of messages, mutes and bans.
            Assert.Equal(9, (await olive.PostMessageAsync(room, "after the restart")).GetProperty("seq").GetInt64());
            var repeat = await olive.PostMessageAsync(room, "olive says 3", "olive-3", expect: 200);
            Assert.Equal(3, repeat.GetProperty("seq").GetInt64());
            Assert.Equal(3, (await bob.PostMessageAsync(direct, "still here")).GetProperty("seq").GetInt64());
            Assert.Equal("muted", (await node.As(Tenant, "dave").PostMessageAsync(room, "let me speak", expect: 403)).Str("code"));
            Assert.Equal("banned", (await node.As(Tenant, "erin").PostMessageAsync(room, "let me in", expect: 403)).Str("code"));
            Assert.Equal("forbidden", (await bob.Expect(403, HttpMethod.Put, $"/v1/messages/{edited}",
                new { content = new { type = "text", text = "not mine" } })).Str("code"));
            var reacted = await bob.Expect(200, HttpMethod.Post, $"/v1/messages/{firstOfOlive}/reactions", new { reaction = "heart" });
            Assert.Equal(["dave", "bob"], reacted.GetProperty("reactions").GetProperty("heart").EnumerateArray().Select(u => u.GetString()!).Order().Reverse());

            var messages = await olive.AllMessagesAsync(room);
            Assert.Equal(Enumerable.Range(1, 9).Select(s => (long)s), messages.Select(m => m.GetProperty("seq").GetInt64()));
        }
        output.WriteLine($"{storage}: verified after the restart at {clock.Elapsed.TotalSeconds:0.0} s");
    }

    private static async Task<long> SnapshotCountAsync(NodeOptions options)
    {
        var storage = options.Storage();
        await using DbConnection connection = storage.IsPostgres
            ? new NpgsqlConnection(storage.JournalConnectionString)
            : new SqliteConnection(storage.JournalConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM snapshot";
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<Observed> ObserveAsync(TestNode node, string room, string direct, string edited)
    {
        var olive = node.As(Tenant, "olive");
        return new Observed(
            await olive.Expect(200, HttpMethod.Get, $"/v1/conversations/{room}"),
            await olive.Expect(200, HttpMethod.Get, $"/v1/conversations/{direct}"),
            await olive.AllMessagesAsync(room),
            await olive.AllMessagesAsync(direct),
            await olive.Expect(200, HttpMethod.Get, $"/v1/messages/{edited}"),
            await olive.Expect(200, HttpMethod.Get, $"/v1/conversations/{room}/moderation/log"),
            await olive.Expect(200, HttpMethod.Get, "/v1/users/me"),
            await olive.Expect(200, HttpMethod.Get, "/v1/conversations"),
            await node.As(Tenant, "root", "admin").Expect(200, HttpMethod.Get, "/v1/admin/tenant/settings"));
    }
}
