using System.Net.Http.Json;
using System.Text.Json;
using Akka.Actor;
using Caas.Actors.Conversations;
using Caas.Enrichment;
using Caas.Streams.Kafka;
using Caas.Streams.Operational;
using Caas.Streams.Pipeline;
using Caas.Streams.Privacy;
using Caas.Streams.ReadModel;
using Microsoft.Extensions.DependencyInjection;

namespace Caas.Streams.Tests;

/// <summary>Message-id claims, admission and the dedupe window on a real node (PostgreSQL).</summary>
public sealed class MessageIdClaimsTests
{
    private static async Task<string> CreateGroupAsync(HttpClient client, params string[] members)
    {
        var response = await Caas.Tests.Shared.Retrying.PostAsJsonAsync(client, "/v1/conversations", new { type = "group", members });
        Assert.Equal(201, (int)response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
    }

    private static async Task<(int Status, JsonElement Body)> PostAsync(HttpClient client, string conversation, string text, string messageId)
    {
        using var response = await client.PostAsJsonAsync("/v1/messages",
            new { conversation_id = conversation, content = new { type = "text", text }, message_id = messageId });
        return ((int)response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement);
    }

    private static async Task<long> LastSeqAsync(HttpClient client, string conversation) =>
        JsonDocument.Parse(await client.GetStringAsync($"/v1/conversations/{conversation}")).RootElement.GetProperty("last_seq").GetInt64();

    [Fact]
    public async Task A_refused_attempt_runs_no_enricher_and_claims_nothing()
    {
        var counting = new CountingEnricher();
        await using var node = await PipelineNode.StartAsync("", counting);
        using var alice = node.Client("t-cheap", "alice");
        using var mallory = node.Client("t-cheap", "mallory");
        var id = await CreateGroupAsync(alice);
        var claims = new MessageIdClaims(node.Services.GetRequiredService<OperationalStore>());

        for (var i = 0; i < 5; i++) Assert.Equal(404, (await PostAsync(mallory, id, "let me in", $"cheap-{i}")).Status);
        Assert.Equal(404, (await PostAsync(alice, "made-up", "hi", "cheap-made-up")).Status);
        Assert.Equal(0, counting.Calls);
        for (var i = 0; i < 5; i++) Assert.Null(await claims.FindAsync("t-cheap", $"cheap-{i}"));
        Assert.Null(await claims.FindAsync("t-cheap", "cheap-made-up"));

        Assert.Equal(201, (await PostAsync(alice, id, "hello", "cheap-ok")).Status);
        Assert.Equal(1, counting.Calls);
        var stored = await claims.FindAsync("t-cheap", "cheap-ok");
        Assert.Equal(new MessageIdClaim(id, 1, "alice", stored!.CreatedAt), stored);
        Assert.NotNull(stored.CreatedAt);
    }

    [Fact]
    public async Task An_old_id_stays_taken_after_the_entity_window_even_when_the_read_model_lost_it()
    {
        // The entity remembers only its last three ids; the read model's row is removed to stand for a lagging projection.
        await using var node = await PipelineNode.StartAsync("caas.entities.message-window = 3\ncaas.pipeline.dedupe-window = 1ms");
        using var alice = node.Client("t-old", "alice");
        using var bob = node.Client("t-old", "bob");
        var id = await CreateGroupAsync(alice, "bob");
        var first = await PostAsync(alice, id, "the original", "old-1");
        Assert.Equal(201, first.Status);
        for (var i = 2; i <= 6; i++) Assert.Equal(201, (await PostAsync(alice, id, $"m{i}", $"old-{i}")).Status);
        var store = node.Services.GetRequiredService<ReadModelStore>();
        await WaitForAsync(async () => await new ReadModelQueries(store).MessageByIdAsync("t-old", "old-1") is not null);
        await using (var c = await store.OpenAsync())
            await ReadModelStore.ExecuteAsync(c, "DELETE FROM rm_messages WHERE tenant_id = 't-old' AND message_id = 'old-1'", default);

        var (conflict, problem) = await PostAsync(bob, id, "bob's", "old-1");
        Assert.Equal(409, conflict);
        Assert.Equal("message_id_conflict", problem.GetProperty("code").GetString());
        var (repeat, ack) = await PostAsync(alice, id, "a changed retry", "old-1");
        Assert.Equal(200, repeat);
        Assert.Equal(1, ack.GetProperty("seq").GetInt64());
        Assert.Equal(first.Body.GetProperty("created_at").GetString(), ack.GetProperty("created_at").GetString());
        var other = await CreateGroupAsync(alice);
        Assert.Equal(409, (await PostAsync(alice, other, "elsewhere", "old-1")).Status);
        Assert.Equal(6, await LastSeqAsync(alice, id));
        Assert.Equal(0, await LastSeqAsync(alice, other));
    }

    [Fact]
    public async Task Claims_that_never_led_to_a_message_are_purged_after_the_horizon_and_stored_ones_stay()
    {
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client("t-purge", "alice");
        var id = await CreateGroupAsync(alice);
        Assert.Equal(201, (await PostAsync(alice, id, "kept", "purge-kept")).Status);
        var store = node.Services.GetRequiredService<OperationalStore>();
        var now = new MessageIdClaims(store);
        // A claim whose message never reached the journal (its node stopped in between).
        await now.ClaimAsync("t-purge", "purge-ghost", id);
        Assert.Equal(201, (await PostAsync(alice, id, "fresh", "purge-fresh")).Status);
        await WaitForAsync(async () => (await now.FindAsync("t-purge", "purge-kept"))?.Persisted == true);

        Assert.Equal(0, await now.PurgeAsync("t-purge", TimeSpan.FromDays(1)));
        Assert.NotNull(await now.FindAsync("t-purge", "purge-ghost"));

        var later = new MessageIdClaims(store, new ShiftedClock(TimeSpan.FromDays(2)));
        Assert.Equal(1, await later.PurgeAsync("t-purge", TimeSpan.FromDays(1)));
        Assert.Null(await now.FindAsync("t-purge", "purge-ghost"));
        Assert.True((await now.FindAsync("t-purge", "purge-kept"))!.Persisted);
        Assert.True((await now.FindAsync("t-purge", "purge-fresh"))!.Persisted);

        // The purged id is free again; the stored one is not.
        var other = await CreateGroupAsync(alice);
        Assert.Equal(201, (await PostAsync(alice, other, "ghost for real", "purge-ghost")).Status);
        Assert.Equal(409, (await PostAsync(alice, other, "kept again", "purge-kept")).Status);
    }

    [Fact]
    public async Task An_erasure_removes_the_users_dedupe_window_entries()
    {
        await using var node = await PipelineNode.StartAsync();
        using var alice = node.Client("t-forget", "alice");
        var id = await CreateGroupAsync(alice);
        Assert.Equal(201, (await PostAsync(alice, id, "remember me", "forget-1")).Status);
        var window = DedupeWindow.Of(node.Services.GetRequiredService<ActorSystem>());
        var retry = new IngestMessage("t-forget", id, "alice", "forget-1", new MessageContent("text", "remember me"), IngestSource.Rest);
        Assert.True(window.TryRecall(retry, out _));

        await node.Services.GetRequiredService<UserErasure>().EraseAsync("t-forget", "alice", "root");
        Assert.False(window.TryRecall(retry, out _));
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, "The condition did not hold within 2 minutes.");
            await Task.Delay(50);
        }
    }
}

/// <summary>The dedupe window alone: what it answers, to whom, and its bounds.</summary>
public sealed class DedupeWindowTests
{
    private static readonly MessageContent Hello = new("text", "hello");

    private static MessageAck Ack(string messageId, string conversation = "c1", string sender = "alice") =>
        new(messageId, conversation, 1, sender, Hello, DateTimeOffset.UnixEpoch, Repeat: false);

    private static IngestMessage Retry(string messageId, string tenant = "t", string conversation = "c1", string sender = "alice",
        MessageContent? content = null) =>
        new(tenant, conversation, sender, messageId, content ?? Hello, IngestSource.Rest);

    [Fact]
    public void Only_the_same_tenant_sender_conversation_and_content_is_answered()
    {
        var window = new DedupeWindow(TimeSpan.FromMinutes(5), 100, 1 << 20);
        window.Remember("t", Ack("m1"), Hello);

        Assert.True(window.TryRecall(Retry("m1"), out var ack));
        Assert.Equal(Ack("m1") with { Repeat = true }, ack);
        Assert.False(window.TryRecall(Retry("m1", sender: "mallory"), out _));
        Assert.False(window.TryRecall(Retry("m1", conversation: "c2"), out _));
        Assert.False(window.TryRecall(Retry("m1", tenant: "other"), out _));
        Assert.False(window.TryRecall(Retry("m1", content: new MessageContent("text", "changed")), out _));
        Assert.False(window.TryRecall(Retry("m2"), out _));
    }

    [Fact]
    public void Entries_expire_and_are_bounded_in_bytes_as_well_as_count()
    {
        var clock = new ShiftedClock(TimeSpan.Zero);
        var window = new DedupeWindow(TimeSpan.FromMinutes(5), 1_000, 4_000, clock);
        for (var i = 0; i < 100; i++) window.Remember("t", Ack($"m{i}"), Hello);
        Assert.InRange(window.Bytes, 1, 4_000);
        Assert.InRange(window.Count, 1, 99);
        Assert.True(window.TryRecall(Retry("m99"), out _));
        Assert.False(window.TryRecall(Retry("m0"), out _));

        clock.Shift += TimeSpan.FromMinutes(6);
        Assert.False(window.TryRecall(Retry("m99"), out _));
        window.Remember("t", Ack("fresh"), Hello);
        Assert.Equal(1, window.Count);
    }

    [Fact]
    public void Forget_removes_every_entry_of_the_user_and_only_theirs()
    {
        var window = new DedupeWindow(TimeSpan.FromMinutes(5), 100, 1 << 20);
        window.Remember("t", Ack("a1"), Hello);
        window.Remember("t", Ack("a2", conversation: "c2"), Hello);
        window.Remember("t", Ack("b1", sender: "bob"), Hello);
        window.Remember("u", Ack("a3"), Hello);
        var before = window.Bytes;

        Assert.Equal(2, window.Forget("t", "alice"));
        Assert.False(window.TryRecall(Retry("a1"), out _));
        Assert.False(window.TryRecall(Retry("a2", conversation: "c2"), out _));
        Assert.True(window.TryRecall(Retry("b1", sender: "bob"), out _));
        Assert.True(window.TryRecall(Retry("a3", tenant: "u"), out _));
        Assert.True(window.Bytes < before);
    }
}

public sealed class PlainContentRecordTests
{
    [Fact]
    public void A_kafka_record_with_plain_string_content_is_a_text_message()
    {
        var settings = new KafkaSettings { Bootstrap = "unused:9092" };
        var value = """{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u1","message_id":"m1","content":"hi"}"""u8.ToArray();
        var record = ChatMessageRecord.Read("chat.messages", null, value, settings);
        Assert.Equal(new MessageContent("text", "hi"), record.Message!.Content);

        var noType = ChatMessageRecord.Read("chat.messages", null,
            """{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u1","message_id":"m1","content":{"text":"hi"}}"""u8.ToArray(), settings);
        Assert.Contains("content.type", noType.Reason);
        var number = ChatMessageRecord.Read("chat.messages", null,
            """{"tenant_id":"t-a","conversation_id":"c1","sender_id":"u1","message_id":"m1","content":5}"""u8.ToArray(), settings);
        Assert.Contains("content", number.Reason);
    }
}

/// <summary>The system clock moved by <see cref="Shift"/>: "later" without waiting.</summary>
public sealed class ShiftedClock(TimeSpan shift) : TimeProvider
{
    public TimeSpan Shift { get; set; } = shift;

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Shift;
}

/// <summary>Counts the messages it is asked to enrich.</summary>
public sealed class CountingEnricher : IEnricher
{
    private int _calls;
    public int Calls => Volatile.Read(ref _calls);
    public string Name => "counting";
    public string Version => "1";

    public ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        Interlocked.Increment(ref _calls);
        return ValueTask.FromResult(EnrichmentResult.From(this, new { }));
    }
}
