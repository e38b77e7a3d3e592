using System.Net.Http.Json;
using System.Text.Json;
using Akka.Actor;
using Akka.Serialization;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Enrichment;
using Caas.Streams.Audit;
using Caas.Streams.Pipeline;
using Caas.Streams.Privacy;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>
/// Deferred enrichment on a real node (PostgreSQL): above the high-water mark (0 here: every message) a message is
/// stored and acknowledged without enrichment, and the enrichment projection has its entity record the results later,
/// in journal order, once per message, across restarts; erasure makes them unreadable; FIFO, gap-free seqs,
/// idempotency and the hash chain hold.
/// </summary>
public sealed class DeferredEnrichmentTests
{
    /// <summary>Every message deferred; a budget no loaded machine misses, so the gate's result is never cut off.</summary>
    private const string DeferAll = "caas.pipeline.enrich-high-water = 0\ncaas.pipeline.enrich-budget = 10m\n";

    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    private static async Task<string> CreateGroupAsync(HttpClient client, params string[] members)
    {
        var response = await Caas.Tests.Shared.Retrying.PostAsJsonAsync(client, "/v1/conversations", new { type = "group", members });
        Assert.Equal(201, (int)response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
    }

    private static Task<IngestOutcome> Submit(PipelineNode node, string tenant, string conversation, string id, string text) =>
        node.Ingest.SubmitAsync(new IngestMessage(tenant, conversation, "alice", id, new MessageContent("text", text), IngestSource.Bulk))
            .WaitAsync(Patience);

    private static async Task<List<JsonElement>> HistoryAsync(HttpClient client, string conversation)
    {
        var page = JsonDocument.Parse(await client.GetStringAsync($"/v1/messages/conversations/{conversation}?limit=200")).RootElement;
        return page.GetProperty("items").EnumerateArray().OrderBy(m => m.GetProperty("seq").GetInt64()).ToList();
    }

    private static bool Deferred(JsonElement message) =>
        message.GetProperty("enrichment") is { ValueKind: JsonValueKind.Object } e && e.TryGetProperty("deferred", out var d) && d.GetBoolean();

    private static bool EnrichedBy(JsonElement message, string enricher) =>
        message.GetProperty("enrichment") is { ValueKind: JsonValueKind.Object } e && !Deferred(message)
        && e.GetProperty("results").EnumerateArray().Any(r => r.GetProperty("name").GetString() == enricher);

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Not within {Patience}: {what}");
            await Task.Delay(100);
        }
    }

    private static string Pid(string tenant, string conversation) => ConversationActor.PersistenceIdOf(Ids.EntityId(tenant, conversation));

    /// <summary>The journal's rows of one conversation: manifest, tags, stored bytes; in journal order.</summary>
    private static async Task<List<(string Manifest, string Tags, byte[] Message)>> JournalRowsAsync(string postgres, string pid)
    {
        await using var c = new NpgsqlConnection(postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT manifest, COALESCE(tags, ''), message FROM journal WHERE persistence_id = @p ORDER BY sequence_number", c);
        cmd.Parameters.AddWithValue("p", pid);
        var rows = new List<(string, string, byte[])>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) rows.Add((r.GetString(0), r.GetString(1), (byte[])r.GetValue(2)));
        return rows;
    }

    private const string EnrichedManifest = "conv.message-enriched.v1";

    /// <summary>The message seqs of the conversation's MessageEnriched events, in journal order.</summary>
    private static async Task<List<long>> EnrichedSeqsAsync(string postgres, string pid) =>
        (await JournalRowsAsync(postgres, pid)).Where(r => r.Manifest == EnrichedManifest)
        .Select(r => JsonDocument.Parse(r.Message).RootElement.GetProperty("seq").GetInt64()).ToList();

    private static async Task<long> StoredOffsetAsync(string postgres)
    {
        await using var c = new NpgsqlConnection(postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT last_offset FROM rm_projection_offsets WHERE name = @n", c);
        cmd.Parameters.AddWithValue("n", EnrichmentProjection.Name);
        return await cmd.ExecuteScalarAsync() is long o ? o : 0;
    }

    [Fact]
    public async Task Above_the_high_water_mark_a_message_is_acknowledged_at_once_and_enriched_later_in_order()
    {
        var postgres = TestDatabases.NewPostgresDatabase("defer");
        var gate = new GateEnricher(open: false);
        await using var node = await PipelineNode.StartOnAsync(postgres, DeferAll, _ => { }, gate);
        using var alice = node.Client("t-defer", "alice");
        var conversation = await CreateGroupAsync(alice);

        // Acknowledged while no enricher can finish (the gate is shut): the ack does not wait for enrichment.
        for (var i = 0; i < 20; i++)
            Assert.IsType<Persisted>(await Submit(node, "t-defer", conversation, $"d{i}", $"deferred message number {i}"));
        Assert.Equal(0, gate.Returned);

        var history = await HistoryAsync(alice, conversation);
        Assert.Equal(20, history.Count);
        Assert.All(history, m => Assert.True(Deferred(m), m.ToString()));
        var pid = Pid("t-defer", conversation);
        var rows = await JournalRowsAsync(postgres, pid);
        Assert.Equal(20, rows.Count(r => r.Tags.Contains(";" + EnrichmentTags.Deferred + ";", StringComparison.Ordinal)));
        await using (var journal = await JournalDb.OpenAsync(Caas.Actors.Hosting.StorageOptions.Postgres(postgres)))
            Assert.Equal(20, (await EnrichmentProjection.LagAsync(journal, 0)).Messages);

        gate.Open();
        await Eventually(async () => (await HistoryAsync(alice, conversation)).All(m => EnrichedBy(m, "gate")), "every message enriched");
        history = await HistoryAsync(alice, conversation);
        // The node's own enrichers ran on the deferred messages too.
        Assert.All(history, m => Assert.True(EnrichedBy(m, "entities"), m.ToString()));
        // One MessageEnriched per message, in the order the messages arrived.
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), await EnrichedSeqsAsync(postgres, pid));
        // The lag behind the stored offset is 0 once the projection has stored it.
        await Eventually(async () =>
        {
            await using var journal = await JournalDb.OpenAsync(Caas.Actors.Hosting.StorageOptions.Postgres(postgres));
            return (await EnrichmentProjection.LagAsync(journal, await StoredOffsetAsync(postgres))).Messages == 0;
        }, "the enrichment lag back to 0");
    }

    [Fact]
    public async Task The_projection_resumes_after_a_restart_without_losing_or_double_applying()
    {
        var postgres = TestDatabases.NewPostgresDatabase("defer");
        string conversation;
        // First node: messages stored deferred; it stops before any enrichment could be recorded.
        var shut = new GateEnricher(open: false);
        await using (var first = await PipelineNode.StartOnAsync(postgres, DeferAll, _ => { }, shut))
        {
            using var alice = first.Client("t-resume", "alice");
            conversation = await CreateGroupAsync(alice);
            for (var i = 0; i < 10; i++)
                Assert.IsType<Persisted>(await Submit(first, "t-resume", conversation, $"r{i}", $"resume {i}"));
        }
        var pid = Pid("t-resume", conversation);
        Assert.Empty(await EnrichedSeqsAsync(postgres, pid));

        // Second node: picks up from the stored offset and enriches every message once.
        await using (var second = await PipelineNode.StartOnAsync(postgres, DeferAll, _ => { }, new GateEnricher(open: true)))
        {
            using var alice = second.Client("t-resume", "alice");
            await Eventually(async () => (await HistoryAsync(alice, conversation)).All(m => EnrichedBy(m, "gate")), "enriched after the restart");
            await Eventually(async () => await StoredOffsetAsync(postgres) > 0, "the offset stored");
        }
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), await EnrichedSeqsAsync(postgres, pid));

        // A crash after the entities acknowledged but before the offset was stored: the batch is replayed, and the
        // entity records nothing twice.
        var stored = await StoredOffsetAsync(postgres);
        await using (var c = new NpgsqlConnection(postgres))
        {
            await c.OpenAsync();
            await using var reset = new NpgsqlCommand("UPDATE rm_projection_offsets SET last_offset = 0 WHERE name = @n", c);
            reset.Parameters.AddWithValue("n", EnrichmentProjection.Name);
            Assert.Equal(1, await reset.ExecuteNonQueryAsync());
        }
        var replayed = new GateEnricher(open: true);
        await using (var third = await PipelineNode.StartOnAsync(postgres, DeferAll, _ => { }, replayed))
        {
            await Eventually(async () => await StoredOffsetAsync(postgres) >= stored, "the replayed batch's offset stored again");
            // the replay ran the enrichers again (nothing is skipped before the entity decides) ...
            Assert.True(replayed.Returned >= 10, $"replayed {replayed.Returned}");
            using var alice = third.Client("t-resume", "alice");
            Assert.All(await HistoryAsync(alice, conversation), m => Assert.True(EnrichedBy(m, "gate"), m.ToString()));
        }
        // ... and the entity recorded nothing twice.
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), await EnrichedSeqsAsync(postgres, pid));
    }

    [Fact]
    public async Task A_deferred_message_that_commits_after_the_tag_stream_passed_it_is_enriched_by_the_sweep()
    {
        var postgres = TestDatabases.NewPostgresDatabase("defer");
        var gate = new GateEnricher(open: true);
        // The plugin gives up on an ordering gap after query-delay x max-tries; 50 ms x 4 keeps the pass short.
        await using var node = await PipelineNode.StartOnAsync(postgres, DeferAll + """
            akka.persistence.query.journal.sql.journal-sequence-retrieval { query-delay = 50ms, max-tries = 4 }
            caas.projections.batch-window = 20ms
            caas.projections.late-commit-sweep = 200ms
            """, _ => { }, gate);
        using var alice = node.Client("t-late-enrich", "alice");
        var slow = await CreateGroupAsync(alice);
        var fast = await CreateGroupAsync(alice);
        var slowPid = Pid("t-late-enrich", slow);
        var fastPid = Pid("t-late-enrich", fast);

        // A journal writer whose transaction has its ordering value but does not commit yet: the slow conversation's row
        // insert waits on an advisory lock this test holds on a connection of its own.
        await using var admin = new NpgsqlConnection(postgres);
        await admin.OpenAsync();
        await using (var cmd = new NpgsqlCommand($"""
            CREATE FUNCTION caas_test_hold() RETURNS trigger AS $$
            BEGIN
              IF NEW.persistence_id = '{slowPid}' THEN PERFORM pg_advisory_xact_lock_shared(4343); END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER caas_test_hold AFTER INSERT ON journal FOR EACH ROW EXECUTE FUNCTION caas_test_hold();
            SELECT pg_advisory_lock(4343);
            """, admin))
            await cmd.ExecuteNonQueryAsync();
        var held = Submit(node, "t-late-enrich", slow, "late-1", "held back by its transaction");
        await using (var probe = new NpgsqlConnection(postgres))
        {
            await probe.OpenAsync();
            await Eventually(async () =>
            {
                await using var cmd = new NpgsqlCommand("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", probe);
                return (long)(await cmd.ExecuteScalarAsync())! == 1;
            }, "the slow writer to hold its ordering value");
        }

        // A later deferred row commits and reaches the enrichers: the tag stream has read past the held ordering value.
        // (Recording its result waits: the journal answers writes in the order they came.)
        var later = Submit(node, "t-late-enrich", fast, "late-2", "committed first");
        await Eventually(() => Task.FromResult(gate.Returned == 1), "the later message to be enriched");
        if (held.IsCompleted) Assert.Fail($"the held message was answered {await held}");
        Assert.Empty(await EnrichedSeqsAsync(postgres, slowPid));

        // The held transaction commits now, below the projection's offset: the sweep finds it and has it enriched.
        await using (var cmd = new NpgsqlCommand("SELECT pg_advisory_unlock(4343); DROP TRIGGER caas_test_hold ON journal;", admin))
            await cmd.ExecuteNonQueryAsync();
        Assert.IsType<Persisted>(await held);
        Assert.IsType<Persisted>(await later);
        await Eventually(async () => (await EnrichedSeqsAsync(postgres, slowPid)).Count == 1, "the late message to be enriched by the sweep");
        Assert.Equal([1L], await EnrichedSeqsAsync(postgres, slowPid));
        await Eventually(async () => (await HistoryAsync(alice, slow)).All(m => EnrichedBy(m, "gate")), "the late message enriched in the read model");
        Assert.Equal([1L], await EnrichedSeqsAsync(postgres, fastPid));
    }

    [Fact]
    public async Task Erasing_the_author_makes_the_recorded_enrichment_unreadable()
    {
        var postgres = TestDatabases.NewPostgresDatabase("defer");
        await using var node = await PipelineNode.StartOnAsync(postgres, DeferAll, _ => { }, new GateEnricher(open: true));
        using var alice = node.Client("t-erase-enrich", "alice");
        var conversation = await CreateGroupAsync(alice);
        const string text = "write to alice.secret@example.com or call +1 650 253 0000";
        Assert.IsType<Persisted>(await Submit(node, "t-erase-enrich", conversation, "secret-1", text));
        await Eventually(async () => (await HistoryAsync(alice, conversation)).All(m => EnrichedBy(m, "gate")), "enriched");
        var enrichment = (await HistoryAsync(alice, conversation))[0].GetProperty("enrichment").ToString();
        Assert.Contains("alice.secret@example.com", enrichment);

        // The journal keeps the enrichment sealed: no plaintext in the stored event.
        var pid = Pid("t-erase-enrich", conversation);
        var stored = (await JournalRowsAsync(postgres, pid)).Single(r => r.Manifest == EnrichedManifest);
        var storedText = System.Text.Encoding.UTF8.GetString(stored.Message);
        Assert.DoesNotContain("example.com", storedText);
        Assert.Contains("\"sealed\"", storedText);
        var serializer = (SerializerWithStringManifest)node.Services.GetRequiredService<ActorSystem>().Serialization
            .FindSerializerForType(typeof(MessageEnriched));
        Assert.Contains("alice.secret@example.com",
            JsonSerializer.Serialize(((MessageEnriched)serializer.FromBinary(stored.Message, EnrichedManifest)).Enrichment, Caas.Actors.Serialization.CaasSerializer.Json));

        await node.Services.GetRequiredService<UserErasure>().EraseAsync("t-erase-enrich", "alice", "admin");

        // Read model and journal alike: the enrichment reads as nothing once the author's key is destroyed.
        var after = await HistoryAsync(alice, conversation);
        Assert.Equal(JsonValueKind.Null, after[0].GetProperty("enrichment").ValueKind);
        Assert.Null(((MessageEnriched)serializer.FromBinary(stored.Message, EnrichedManifest)).Enrichment);
        Assert.Single(await EnrichedSeqsAsync(postgres, pid));
    }

    [Fact]
    public async Task With_every_message_deferred_order_seqs_idempotency_and_the_hash_chain_hold()
    {
        var postgres = TestDatabases.NewPostgresDatabase("defer");
        await using var node = await PipelineNode.StartOnAsync(postgres, DeferAll, _ => { }, new GateEnricher(open: true));
        using var alice = node.Client("t-defer-fifo", "alice");
        var ids = new List<string>();
        for (var c = 0; c < 10; c++) ids.Add(await CreateGroupAsync(alice));

        var submissions = new List<(string Conversation, int N, Task<IngestOutcome> Outcome)>();
        for (var n = 0; n < 1000; n++)
        {
            var conversation = ids[n % ids.Count];
            submissions.Add((conversation, n, Submit(node, "t-defer-fifo", conversation, $"f{n}", $"n={n}")));
        }
        await Task.WhenAll(submissions.Select(s => s.Outcome));
        foreach (var group in submissions.GroupBy(s => s.Conversation))
        {
            var seqs = group.OrderBy(s => s.N).Select(s => ((Persisted)s.Outcome.Result).Ack.Seq).ToList();
            Assert.Equal(Enumerable.Range(1, seqs.Count).Select(i => (long)i), seqs);
        }

        // A retry of a stored id is answered with the original acknowledgement, deferred or not.
        foreach (var (conversation, n, outcome) in submissions.Take(20))
        {
            var again = Assert.IsType<Persisted>(await Submit(node, "t-defer-fifo", conversation, $"f{n}", $"n={n}"));
            Assert.True(again.Ack.Repeat);
            Assert.Equal(((Persisted)await outcome).Ack.Seq, again.Ack.Seq);
        }

        // Every message enriched once, each conversation's in its order; the journal's hash chain intact.
        foreach (var conversation in ids)
            await Eventually(async () => (await EnrichedSeqsAsync(postgres, Pid("t-defer-fifo", conversation))).Count == 100, "enriched");
        foreach (var conversation in ids)
            Assert.Equal(Enumerable.Range(1, 100).Select(i => (long)i), await EnrichedSeqsAsync(postgres, Pid("t-defer-fifo", conversation)));
        var verify = await new JournalVerifier(node.Services.GetRequiredService<Caas.Actors.Hosting.StorageOptions>(),
            node.Services.GetRequiredService<AuditKey>()).VerifyAsync("t-defer-fifo");
        Assert.True(verify.Intact, string.Join("; ", verify.Broken.Take(5)));
    }
}

/// <summary>A real enricher that answers only once opened: while shut, nothing it enriches can finish.</summary>
public sealed class GateEnricher(bool open) : IEnricher
{
    private readonly TaskCompletionSource _open = NewGate(open);

    private static TaskCompletionSource NewGate(bool open)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (open) gate.SetResult();
        return gate;
    }

    private int _returned;

    public int Returned => Volatile.Read(ref _returned);

    public string Name => "gate";
    public string Version => "1";

    public void Open() => _open.TrySetResult();

    public async ValueTask<EnrichmentResult> EnrichAsync(EnrichmentInput input, CancellationToken ct)
    {
        await _open.Task;
        Interlocked.Increment(ref _returned);
        // Echoes the text: an enrichment holds the message's personal data, which erasure must cover.
        return EnrichmentResult.From(this, new { length = input.Text.Length, text = input.Text });
    }
}
