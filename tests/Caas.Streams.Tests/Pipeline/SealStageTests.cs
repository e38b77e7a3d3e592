using System.Collections.Concurrent;
using Akka;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Akka.Streams.TestKit;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Privacy;
using Caas.Streams.Operational;
using Caas.Streams.Pipeline;
using Caas.Streams.Privacy;
using Caas.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;

namespace Caas.Streams.Tests.Pipeline;

/// <summary>
/// The seal stage alone, over a real vault on SQLite: content sealed as the entity would seal it, a few at once with
/// their order kept, backpressure respected, and a key that cannot be loaded failing that message only.
/// </summary>
public sealed class SealStageTests() : Akka.TestKit.Xunit2.TestKit(StreamTests.Config), IAsyncLifetime
{
    private const string Tenant = "t-seal";
    private readonly StorageOptions _storage = StorageOptions.Sqlite(TestDatabases.NewSqliteDirectory());
    private OperationalStore _store = null!;
    private ContentVault _real = null!;
    private IMaterializer? _materializer;

    private IMaterializer Materializer => _materializer ??= Sys.Materializer();

    public async Task InitializeAsync()
    {
        _store = new OperationalStore(_storage);
        await _store.MigrateAsync();
        _real = new ContentVault(_store, MasterKey.Generate());
    }

    public async Task DisposeAsync() => await _store.DisposeAsync();

    /// <summary>The real vault; a user's async seals can be held until the test lets them go, and are counted.</summary>
    private sealed class GatedVault(IContentVault inner) : IContentVault
    {
        private readonly ConcurrentDictionary<string, TaskCompletionSource> _gates = new();
        public int AsyncSeals;

        public TaskCompletionSource Hold(string userId) =>
            _gates.GetOrAdd(userId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

        public SealedContent Seal(string tenantId, string userId, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData) =>
            inner.Seal(tenantId, userId, plaintext, associatedData);

        public async ValueTask<SealedContent> SealAsync(string tenantId, string userId, ReadOnlyMemory<byte> plaintext,
            ReadOnlyMemory<byte> associatedData, CancellationToken ct = default)
        {
            Interlocked.Increment(ref AsyncSeals);
            if (_gates.TryGetValue(userId, out var gate)) await gate.Task;
            return await inner.SealAsync(tenantId, userId, plaintext, associatedData, ct);
        }

        public byte[]? Open(string tenantId, SealedContent sealedContent, ReadOnlySpan<byte> associatedData) =>
            inner.Open(tenantId, sealedContent, associatedData);
    }

    private PipelineStages Stages(IContentVault? vault, int parallelism = 2)
    {
        var settings = PipelineSettings.Default with { SealParallelism = parallelism };
        // Only the seal stage runs here: what the other stages use is not touched.
        return new PipelineStages(ActorRefs.Nobody, ActorRefs.Nobody, (_, _) => Task.FromResult(Caas.Actors.Tenants.TenantSettingsState.Default),
            null!, null!, new EnrichStage([], settings), DedupeWindow.Of(Sys), settings, NullLogger.Instance)
        {
            Rates = null!,
            Vault = vault,
        };
    }

    private static Submission Message(string sender, string messageId, string text, MessageEnrichment? enrichment = null) =>
        new(new IngestMessage(Tenant, "c-1", sender, messageId, new MessageContent("text", text), IngestSource.Rest)) { Enrichment = enrichment };

    /// <summary>What the entity reads back: the post as it stores it, opened with the associated data it binds.</summary>
    private MessagePosted Opened(Submission s) =>
        (MessagePosted)ContentSealing.Open(new MessagePosted(new EventMeta(Tenant, s.Message.SenderId, DateTimeOffset.UnixEpoch), 1, s.MessageId,
            new MessageContent("placeholder", null)) { Sealed = s.Sealed }, _real);

    [Fact]
    public void Content_and_enrichment_are_sealed_under_the_sender_as_the_entity_binds_them_and_order_is_kept()
    {
        var vault = new GatedVault(_real);
        var slow = vault.Hold("slow");
        var enrichment = new MessageEnrichment([], ["language"]);
        var messages = new[]
        {
            Message("slow", "m-1", "first"), Message("alice", "m-2", "second", enrichment), Message("bob", "m-3", "third"),
            Message("alice", "m-4", "fourth"),
        };
        var (source, sink) = this.SourceProbe<Submission>().Via(Stages(vault, parallelism: 3).Seal())
            .ToMaterialized(this.SinkProbe<Submission>(), Keep.Both).Run(Materializer);
        sink.Request(10);
        foreach (var m in messages) source.SendNext(m);

        // The later ones are sealed while the first waits for its key, but none overtakes it.
        AwaitCondition(() => messages[1].Sealed is not null && messages[2].Sealed is not null, TimeSpan.FromSeconds(10));
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        slow.SetResult();
        Assert.Equal(["m-1", "m-2", "m-3", "m-4"], Enumerable.Range(0, 4).Select(_ => sink.ExpectNext(TimeSpan.FromSeconds(10)).MessageId));

        foreach (var m in messages)
        {
            Assert.False(m.IsDone);
            Assert.Equal(SealedContent.Current, m.Sealed!.V);
            Assert.Equal("c-1", m.Sealed.ConversationId);
            Assert.DoesNotContain(m.Message.Content.Text!, System.Text.Encoding.UTF8.GetString(m.Sealed.Data));
            var opened = Opened(m);
            Assert.Equal(m.Message.Content, opened.Content);
            Assert.Equal(m.Enrichment?.Degraded.ToArray(), opened.Enrichment?.Degraded.ToArray());
        }
        // Bound to the author and the message: moved onto another, it does not open.
        Assert.Equal(ContentSealing.Unreadable, Opened(new Submission(messages[1].Message with { SenderId = "bob" })
        {
            MessageId = "m-2", Sealed = messages[1].Sealed,
        }).Content);
        Assert.Equal(ContentSealing.Unreadable, Opened(new Submission(messages[1].Message) { MessageId = "m-3", Sealed = messages[1].Sealed }).Content);
        source.SendComplete();
        sink.ExpectComplete();
    }

    [Fact]
    public void A_stage_nobody_pulls_from_seals_at_most_its_parallelism_and_takes_no_more()
    {
        var vault = new GatedVault(_real);
        var pulled = 0;
        IEnumerable<Submission> Endless()
        {
            for (var i = 0; ; i++)
            {
                Interlocked.Increment(ref pulled);
                yield return Message("alice", "m-" + i, "text " + i);
            }
        }

        var sink = Source.From(Endless()).Via(Stages(vault, parallelism: 2).Seal()).RunWith(this.SinkProbe<Submission>(), Materializer);
        sink.EnsureSubscription();
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        // Nothing is requested downstream: two sealed and held, at most one more taken from upstream.
        Assert.InRange(Volatile.Read(ref vault.AsyncSeals), 0, 2);
        Assert.InRange(Volatile.Read(ref pulled), 0, 3);

        sink.Request(5);
        Assert.Equal(["m-0", "m-1", "m-2", "m-3", "m-4"], Enumerable.Range(0, 5).Select(_ => sink.ExpectNext(TimeSpan.FromSeconds(10)).MessageId));
        sink.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.InRange(Volatile.Read(ref vault.AsyncSeals), 5, 7);
        Assert.InRange(Volatile.Read(ref pulled), 5, 8);
        sink.Cancel();
    }

    [Fact]
    public async Task A_key_that_cannot_be_loaded_answers_that_message_unavailable_and_the_others_go_on()
    {
        // The user's live key row was wrapped under another master key: loading it fails, as a broken key row would.
        new ContentVault(_store, MasterKey.Generate()).Seal(Tenant, "broken", "x"u8, "aad"u8);
        var messages = new[] { Message("alice", "m-1", "one"), Message("broken", "m-2", "two"), Message("bob", "m-3", "three") };

        var passed = await Source.From(messages).Via(Stages(_real).Seal()).RunWith(Sink.Seq<Submission>(), Materializer);

        Assert.Equal(["m-1", "m-3"], passed.Select(s => s.MessageId));
        Assert.All(passed, s => Assert.NotNull(s.Sealed));
        var failed = Assert.IsType<Rejected>(await messages[1].Outcome);
        Assert.Equal(ErrorCodes.Unavailable, failed.Rejection.Code);
        Assert.NotNull(failed.Rejection.RetryAfterSeconds);
        Assert.Null(messages[1].Sealed);
    }

    [Fact]
    public async Task Without_a_vault_the_stage_passes_messages_through_unsealed()
    {
        var messages = new[] { Message("alice", "m-1", "one"), Message("bob", "m-2", "two") };
        var passed = await Source.From(messages).Via(Stages(null).Seal()).RunWith(Sink.Seq<Submission>(), Materializer);
        Assert.Equal(["m-1", "m-2"], passed.Select(s => s.MessageId));
        Assert.All(passed, s => Assert.Null(s.Sealed));
    }
}
