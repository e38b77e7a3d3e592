using Akka.Persistence.Query;
using Caas.Actors.Calls;
using Caas.Actors.Common;
using Caas.Streams.Calls;
using Caas.Streams.ReadModel;
using Caas.Tests.Shared;

namespace Caas.Streams.Tests.Calls;

/// <summary>
/// The recordings read model on both engines, fed journal envelopes of the call events: rows, consents, participants,
/// status and duration equal to what the call entity's state computes, the quality from the call's end, a replayed
/// batch changing nothing, the listing, the erasure lookup and the figures.
/// </summary>
public sealed class RecordingReadModelTests
{
    private const string Tenant = "t-rec";
    private static readonly DateTimeOffset T0 = new DateTimeOffset(2025, 3, 1, 10, 0, 0, TimeSpan.Zero).AddTicks(1_234_567);

    /// <summary>One conversation's call events, as its entity would journal them (sequence numbers from 1).</summary>
    private sealed class Journal(string conversation)
    {
        public string PersistenceId { get; } = $"calls|{Tenant}|{conversation}";
        public List<ICallEvent> Events { get; } = [];

        public EventMeta Meta(string actor, double seconds) => new(Tenant, actor, T0 + TimeSpan.FromSeconds(seconds));

        public void Add(params ICallEvent[] events) => Events.AddRange(events);

        /// <summary>Every event folded through the entity's own state: what the read model must agree with.</summary>
        public CallRoomState State() => Events.Aggregate(CallRoomState.Empty, (s, e) => s.Apply(e));
    }

    /// <summary>The journals' events interleaved into one tagged stream, with global offsets from <paramref name="firstOffset"/>.</summary>
    private static List<EventEnvelope> Envelopes(long firstOffset, params Journal[] journals)
    {
        var list = new List<EventEnvelope>();
        var offset = firstOffset;
        foreach (var j in journals)
            for (var i = 0; i < j.Events.Count; i++)
                list.Add(new EventEnvelope(Offset.Sequence(offset++), j.PersistenceId, i + 1, j.Events[i], j.Events[i].Meta.OccurredAt.ToUnixTimeMilliseconds(),
                    [CallRoomActor.KindTag]));
        return list;
    }

    private static ParticipantQuality Quality(string user, double rtt, double? bitrate) =>
        new(user, 2, new MetricStats(2, rtt - 10, rtt + 10, rtt * 2), null, new MetricStats(1, 0.5, 0.5, 0.5),
            bitrate is { } b ? new MetricStats(1, b, b, b) : null);

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Recordings_are_projected_as_the_call_entity_sees_them_and_a_replayed_batch_changes_nothing(string engine)
    {
        await using var store = new ReadModelStore(TestDatabases.Storage(engine));
        await store.EnsureSchemaAsync();
        var model = new RecordingReadModel(store);
        await model.EnsureSchemaAsync();
        await model.EnsureSchemaAsync(); // idempotent

        // A recording paused by a newcomer, resumed once they consented, stopped, stored; then the call ends with its quality.
        var one = new Journal("c-one");
        var call1 = CallIds.New("c-one");
        var rec1 = RecordingIds.New();
        var file = new RecordingFile("f-rec-1", "call.webm", "video/webm", 123_456, new string('a', 64), "file:t-rec/f-rec-1");
        one.Add(
            new CallStarted(one.Meta("alice", 0), call1, "c-one", "alice", "video", ["alice", "bob", "carol"]),
            new CallParticipantJoined(one.Meta("bob", 1), call1, "bob"),
            new CallRecordingRequested(one.Meta("alice", 2), call1, rec1, "alice", ["bob"], T0.AddSeconds(32)),
            new CallRecordingConsented(one.Meta("bob", 3.0001), call1, rec1, "bob", true, ConsentMethods.Hub),
            new CallRecordingStarted(one.Meta("bob", 3.0001), call1, rec1),
            new CallParticipantJoined(one.Meta("carol", 10.5000003), call1, "carol"),
            new CallRecordingStopped(one.Meta("carol", 10.5000003), call1, rec1, RecordingReasons.ConsentPending, null, ["carol"], T0.AddSeconds(40)),
            new CallRecordingConsented(one.Meta("carol", 12.25), call1, rec1, "carol", true, ConsentMethods.Hub),
            new CallRecordingStarted(one.Meta("carol", 12.25), call1, rec1),
            new CallRecordingStopped(one.Meta("alice", 20.7777777), call1, rec1, RecordingReasons.Stopped, "alice"),
            new CallRecordingStored(one.Meta("alice", 30), call1, rec1, file),
            new CallEnded(one.Meta("alice", 40), call1, "ended", "alice", 39, ["alice", "bob", "carol"],
                [Quality("alice", 40, 64), Quality("bob", 80, null), Quality("carol", 60, 32)]));

        // A recording refused by one participant, and one deleted while still asking (it stops first: declined, then deleted).
        var two = new Journal("c-two");
        var call2 = CallIds.New("c-two");
        var rec2 = RecordingIds.New();
        var rec3 = RecordingIds.New();
        two.Add(
            new CallStarted(two.Meta("dan", 100), call2, "c-two", "dan", "audio", ["dan", "erin"]),
            new CallParticipantJoined(two.Meta("erin", 101), call2, "erin"),
            new CallRecordingRequested(two.Meta("dan", 102), call2, rec2, "dan", ["erin"], T0.AddSeconds(132)),
            new CallRecordingConsented(two.Meta("erin", 103), call2, rec2, "erin", false, ConsentMethods.Hub),
            new CallRecordingDeclined(two.Meta("erin", 103), call2, rec2, RecordingReasons.Refused, ["erin"]),
            new CallRecordingRequested(two.Meta("erin", 104), call2, rec3, "erin", ["dan"], T0.AddSeconds(134)),
            new CallRecordingStopped(two.Meta("root", 105), call2, rec3, RecordingReasons.Stopped, "root"),
            new CallRecordingDeleted(two.Meta("root", 105), call2, rec3, "root", "admin"));

        var all = Envelopes(1, one, two);
        // In two batches that split the first call's recording mid-way, as the projection's batching may.
        await model.WriteAsync(all[..6]);
        await model.WriteAsync(all[6..]);
        Assert.Equal(all.Count, await model.LoadOffsetAsync());

        async Task AssertAsExpected()
        {
            foreach (var (journal, id) in new[] { (one, rec1), (two, rec2), (two, rec3) })
            {
                var expected = journal.State().FindRecording(id)!;
                var row = (await model.GetAsync(Tenant, id))!;
                Assert.Equal(expected.Status, row.Status);
                Assert.Equal(expected.DurationSeconds, row.DurationSeconds);
                Assert.Equal(expected.EndReason, row.EndReason);
                Assert.Equal(expected.RequestedBy, row.RequestedBy);
                Assert.Equal(expected.CallId, row.CallId);
                Assert.Equal(expected.StartedAt?.ToUnixTimeMilliseconds(), row.StartedAt?.ToUnixTimeMilliseconds());
                Assert.Equal(expected.EndedAt?.ToUnixTimeMilliseconds(), row.EndedAt?.ToUnixTimeMilliseconds());
                Assert.Equal(expected.DeletedAt?.ToUnixTimeMilliseconds(), row.DeletedAt?.ToUnixTimeMilliseconds());
                Assert.Equal(expected.DeletedBy, row.DeletedBy);
                Assert.Equal(expected.File, row.File);
                Assert.Equal(expected.Consents.Select(c => (c.UserId, c.Consent, c.How, c.At.ToUnixTimeMilliseconds())),
                    row.Consents.Select(c => (c.UserId, c.Consent, c.How, c.At.ToUnixTimeMilliseconds())));
            }

            var first = (await model.GetAsync(Tenant, rec1))!;
            Assert.Equal("recorded", first.Status);
            // Recorded from 3.0001 s to 10.5000003 s and from 12.25 s to 20.7777777 s (the pause not counted).
            TimeSpan At(double s) => one.Meta("", s).OccurredAt - T0;
            Assert.Equal((At(10.5000003) - At(3.0001) + (At(20.7777777) - At(12.25))).TotalSeconds, first.DurationSeconds, 9);
            Assert.Equal("c-one", first.ConversationId);
            Assert.Equal(["alice", "bob", "carol"], first.Participants);
            Assert.Equal(["alice", "bob", "carol"], first.Consents.Select(c => c.UserId));
            Assert.Equal(["requested", "hub", "hub"], first.Consents.Select(c => c.How));
            Assert.Equal(file, first.File);
            Assert.Equal(["alice", "bob", "carol"], first.Quality!.Select(q => q.UserId));
            Assert.Equal(80, first.Quality![1].RttMs!.Avg);

            var refused = (await model.GetAsync(Tenant, rec2))!;
            Assert.Equal(("declined", "refused", 0d, (DateTimeOffset?)null), (refused.Status, refused.EndReason, refused.DurationSeconds, refused.StartedAt));
            Assert.Equal([("dan", true), ("erin", false)], refused.Consents.Select(c => (c.UserId, c.Consent)));
            Assert.Null(refused.Quality);

            var deleted = (await model.GetAsync(Tenant, rec3))!;
            Assert.Equal(("deleted", "root", "admin", "stopped"), (deleted.Status, deleted.DeletedBy, deleted.DeleteReason, deleted.EndReason));
            Assert.Equal(["dan", "erin"], deleted.Participants);
            Assert.Equal(["erin"], deleted.Consents.Select(c => c.UserId));
        }

        await AssertAsExpected();

        // A replay (a crash after the write, before the offset moved elsewhere): every row stays as it was.
        await model.WriteAsync(all);
        await model.WriteAsync(all[3..9]);
        await AssertAsExpected();

        // Newest first, by conversation, by period, with a keyset cursor.
        var listed = await model.ListAsync(Tenant, null, null, null, 10, null);
        Assert.Equal([rec3, rec2, rec1], listed.Select(r => r.RecordingId));
        var page1 = await model.ListAsync(Tenant, null, null, null, 2, null);
        var page2 = await model.ListAsync(Tenant, null, null, null, 2, (page1[^1].RequestedAt.ToUnixTimeMilliseconds(), page1[^1].RecordingId));
        Assert.Equal([rec3, rec2, rec1], page1.Concat(page2).Select(r => r.RecordingId));
        Assert.Equal([rec1], (await model.ListAsync(Tenant, "c-one", null, null, 10, null)).Select(r => r.RecordingId));
        Assert.Equal([rec2], (await model.ListAsync(Tenant, null, T0.AddSeconds(102), T0.AddSeconds(103), 10, null)).Select(r => r.RecordingId));
        Assert.Empty(await model.ListAsync("t-other", null, null, null, 10, null));

        // The erasure lookup: everyone asked, the requester, the consenting; deleted ones are done already.
        Assert.Equal([rec1], (await model.OfUserAsync(Tenant, "carol")).Select(r => r.RecordingId));
        Assert.Equal([rec2], (await model.OfUserAsync(Tenant, "erin")).Select(r => r.RecordingId));
        Assert.Empty(await model.OfUserAsync(Tenant, "zed"));

        var stats = await model.StatsAsync(Tenant, null, null);
        Assert.Equal((3L, 1L, 1L, 1L), (stats.Count, stats.Recorded, stats.Declined, stats.Deleted));
        Assert.Equal(first().DurationSeconds, stats.TotalDurationSeconds, 6);
        Assert.Equal(first().DurationSeconds, stats.AverageDurationSeconds!.Value, 6);
        Assert.Equal(123_456, stats.Bytes);
        // Two of the three finished requests recorded nothing.
        Assert.Equal(2d / 3, stats.DeclineRate!.Value, 6);
        Assert.Equal(new RecordingQualityAverage(60, null, 0.5, 48), stats.AverageQuality);
        var none = await model.StatsAsync(Tenant, T0.AddDays(1), null);
        Assert.Equal((0L, 0d, (double?)null, (double?)null, (RecordingQualityAverage?)null),
            (none.Count, none.TotalDurationSeconds, none.AverageDurationSeconds, none.DeclineRate, none.AverageQuality));

        RecordingInfo first() => one.State().FindRecording(rec1)!;
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task A_newcomer_during_the_consent_request_is_asked_and_a_timeout_declines_with_them(string engine)
    {
        await using var store = new ReadModelStore(TestDatabases.Storage(engine));
        await store.EnsureSchemaAsync();
        var model = new RecordingReadModel(store);
        await model.EnsureSchemaAsync();
        var j = new Journal("c-late");
        var call = CallIds.New("c-late");
        var rec = RecordingIds.New();
        j.Add(
            new CallStarted(j.Meta("amy", 0), call, "c-late", "amy", "audio", ["amy", "ben", "cy"]),
            new CallParticipantJoined(j.Meta("ben", 1), call, "ben"),
            new CallRecordingRequested(j.Meta("amy", 2), call, rec, "amy", ["ben"], T0.AddSeconds(32)),
            new CallParticipantJoined(j.Meta("cy", 3), call, "cy"),
            new CallRecordingConsented(j.Meta("ben", 4), call, rec, "ben", true, ConsentMethods.Hub),
            new CallRecordingDeclined(j.Meta("system", 32), call, rec, RecordingReasons.Timeout, ["cy"]),
            new CallEnded(j.Meta("amy", 50), call, "ended", "amy", 49, ["amy", "ben", "cy"]));
        await model.WriteAsync(Envelopes(1, j));

        var row = (await model.GetAsync(Tenant, rec))!;
        var expected = j.State().FindRecording(rec)!;
        Assert.Equal((expected.Status, expected.EndReason, expected.DurationSeconds), (row.Status, row.EndReason, row.DurationSeconds));
        Assert.Equal(("declined", "timeout"), (row.Status, row.EndReason));
        Assert.Equal(["amy", "ben", "cy"], row.Participants);
        Assert.Null(row.Quality);
        Assert.Equal([rec], (await model.OfUserAsync(Tenant, "cy")).Select(r => r.RecordingId));
    }

    [Fact]
    public void Each_recording_event_maps_to_its_kafka_record_and_the_calls_other_events_to_none()
    {
        var j = new Journal("c-k");
        var call = CallIds.New("c-k");
        var rec = RecordingIds.New();
        j.Add(
            new CallStarted(j.Meta("amy", 0), call, "c-k", "amy", "audio", ["amy", "ben"]),
            new CallRecordingRequested(j.Meta("amy", 2), call, rec, "amy", ["ben"], T0.AddSeconds(32)),
            new CallRecordingConsented(j.Meta("ben", 3), call, rec, "ben", true, ConsentMethods.Hub),
            new CallRecordingStarted(j.Meta("ben", 3), call, rec),
            new CallRecordingStopped(j.Meta("amy", 9), call, rec, RecordingReasons.Stopped, "amy"),
            new CallRecordingStored(j.Meta("amy", 10), call, rec, new RecordingFile("f-1", "secret name.webm", "video/webm", 42, new string('b', 64), "s3:bucket/t/f-1")),
            new CallRecordingDeleted(j.Meta("root", 11), call, rec, "root", "erasure"),
            new CallRecordingDeclined(j.Meta("system", 12), call, rec, RecordingReasons.Timeout, ["ben"]));
        var records = Envelopes(1, j).Select(RecordingEventRecord.From).ToList();
        Assert.Null(records[0]);
        Assert.Equal(["requested", "consented", "started", "stopped", "stored", "deleted", "declined"], records.Skip(1).Select(r => r!.Type));
        Assert.All(records.Skip(1), r => Assert.Equal((Tenant, rec, call, "c-k"), (r!.TenantId, r.RecordingId, r.CallId, r.ConversationId)));
        Assert.Equal($"{Tenant}|{rec}|3", records[2]!.Key);
        Assert.Equal($"{Tenant}|{rec}", records[2]!.PartitionKey);

        var consented = System.Text.Json.JsonDocument.Parse(records[2]!.ToJson()).RootElement;
        Assert.Equal(("consented", "ben", "ben", true, 3L), (consented.GetProperty("type").GetString(), consented.GetProperty("actor_id").GetString(),
            consented.GetProperty("user_id").GetString(), consented.GetProperty("consent").GetBoolean(), consented.GetProperty("seq").GetInt64()));
        Assert.False(consented.TryGetProperty("file", out _));
        var stored = System.Text.Json.JsonDocument.Parse(records[5]!.ToJson()).RootElement;
        Assert.Equal((42L, "video/webm"), (stored.GetProperty("file").GetProperty("size").GetInt64(), stored.GetProperty("file").GetProperty("content_type").GetString()));
        Assert.DoesNotContain("secret name", records[5]!.ToJson());
        var deleted = System.Text.Json.JsonDocument.Parse(records[6]!.ToJson()).RootElement;
        Assert.Equal(("root", "root", "erasure"), (deleted.GetProperty("actor_id").GetString(), deleted.GetProperty("user_id").GetString(),
            deleted.GetProperty("reason").GetString()));
    }
}
