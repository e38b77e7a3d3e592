using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Persistence.Query;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Streams.Kafka;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;
using Npgsql;
using Xunit;

namespace Caas.Streams.Tests;

/// <summary>
/// A <see cref="TagProjection"/> with late-commit repair (the media, recordings and search-language projections) gets
/// every event of an entity, in order, when a journal transaction commits after later rows were read and the plugin's
/// gap wait ran out: from the journal in front of the entity's next event, or from the sweep when it was the last.
/// </summary>
public sealed class TagProjectionRepairTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("swept")]
    [InlineData("with-the-next-event")]
    public async Task An_event_the_tag_stream_passed_by_is_applied_in_order(string repair)
    {
        using var scene = await GapScene.StartAsync("tag-gaps", "t-taggap", repair == "swept");
        var (system, storage, tenant) = (scene.System, scene.Storage, scene.Tenant);
        await using var store = new ReadModelStore(storage);
        await store.EnsureSchemaAsync();

        // The projection's writer: what it was given, per entity in order, and its offset (as the real writers store it).
        const string name = "tag-repair-test";
        var applied = new ConcurrentQueue<(string Pid, long Seq)>();
        var offsets = new ProjectionOffsetStore(store);
        system.ActorOf(TagProjection.PropsFor(name, ConversationActor.KindTag, ProjectionSettings.From(system.Settings.Config),
            () => offsets.LoadAsync(name), async list =>
            {
                foreach (var e in list) applied.Enqueue((e.PersistenceId, e.SequenceNr));
                await offsets.SaveAsync(name, ((Sequence)list[^1].Offset).Value);
            }, new TagRepair(store, "conversation|", ct => JournalDb.OpenAsync(storage, ct))));
        long[] Seqs(string pid) => [.. applied.Where(a => a.Pid == pid).Select(a => a.Seq).Distinct()];
        await Polling.TrueAsync(() => Task.FromResult(Seqs(scene.SlowPid).Length == 2), "the first rows to be applied");

        // A journal writer whose transaction has its ordering value but does not commit yet.
        await using var hold = await JournalHold.StartAsync(storage, "c-slow", 4244);
        var held = scene.PostSlow("s-2");
        await hold.WaitUntilHeldAsync();

        // A later row commits and is applied: the tag stream has read past the held ordering value.
        var later = scene.PostFast("f-1");
        await Polling.TrueAsync(() => Task.FromResult(Seqs(scene.FastPid).Length == 2), "the later row to be applied");
        Assert.False(held.IsCompleted);
        Assert.Equal([1L, 2L], Seqs(scene.SlowPid));

        await hold.ReleaseAsync();
        Assert.Equal(2, Assert.IsType<MessageAck>(await held).Seq);
        Assert.IsType<MessageAck>(await later);

        var expected = 3;
        if (repair != "swept")
        {
            Assert.IsType<MessageAck>(await scene.PostSlow("s-3"));
            expected = 4;
        }
        await Polling.TrueAsync(() => Task.FromResult(Seqs(scene.SlowPid).Length >= expected), "the late row to be applied");
        Assert.Equal(Enumerable.Range(1, expected).Select(n => (long)n), Seqs(scene.SlowPid));
        // In order: no event of the entity was applied before one with a lower seq.
        var order = applied.Where(a => a.Pid == scene.SlowPid).Select(a => a.Seq).Distinct().ToList();
        Assert.Equal(order.OrderBy(s => s), order);
    }
}
