using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.Serialization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Hosting;
using Caas.Actors.Rooms;
using Caas.Actors.Serialization;
using Caas.Actors.Sessions;
using Caas.Actors.Tenants;
using Caas.Tests.Shared;

namespace Caas.Actors.Tests;

/// <summary>One ActorSystem with the node's HOCON, so the tests go through Akka's own serializer lookup.</summary>
public sealed class SerializationSystem : IDisposable
{
    public SerializationSystem() =>
        System = ActorSystem.Create("serialization",
            CaasConfig.Compose(StorageOptions.Sqlite(TestDatabases.NewSqliteDirectory()), "akka.actor.provider = local\nakka.loglevel = WARNING"));

    public ActorSystem System { get; }

    public void Dispose() => System.Terminate().Wait(TimeSpan.FromSeconds(10));
}

public sealed partial class SerializerTests(SerializationSystem fixture) : IClassFixture<SerializationSystem>
{
    private static readonly DateTimeOffset At = new DateTimeOffset(2026, 3, 1, 12, 34, 56, TimeSpan.Zero).AddTicks(1_234_567);
    private static readonly EventMeta Meta = new("acme", "alice", At);
    private static readonly MessageContent Content = new("text", "héllo — 日本語 👋 \"quoted\" <b>&</b>\nsecond line");
    private static readonly ImmutableArray<InitialMember> Members = [new("alice", Role.Owner), new("bob", Role.Admin), new("carol", Role.Moderator)];
    private static readonly ImmutableDictionary<string, string> Metadata =
        ImmutableDictionary<string, string>.Empty.Add("topic", "Q3 planning").Add("CamelCaseKey", "kept as written");

    private static ConversationState State()
    {
        var s = ConversationState.Empty(5);
        IConversationEvent[] events =
        [
            new ConversationCreated(Meta, "c-1", ConversationTypes.Group, "Team", Members),
            new ConversationUpdated(Meta with { OccurredAt = At.AddMinutes(1) }, "Team ☕", Metadata),
            new MemberAdded(Meta with { OccurredAt = At.AddMinutes(2) }, "dave", Role.Member),
            new MessagePosted(Meta with { ActorId = "dave" }, 1, "m-1", Content),
            new MessagePosted(Meta with { ActorId = "bob" }, 2, "m-2", Content),
            new ReactionAdded(Meta, 1, "m-1", "👍"),
            new ReactionAdded(Meta with { ActorId = "bob" }, 1, "m-1", "👍"),
            new ReactionAdded(Meta with { ActorId = "bob" }, 2, "m-2", ":shipit:"),
            new MessageDeleted(Meta, 2, "m-2"),
            new UserBanned(Meta, "mallory", At.AddDays(1), "spam"),
            new UserMuted(Meta, "dave", null, "cool off"),
            new CallUpdated(Meta, "call_1", "started", "ringing", "audio", "alice", At, ["alice"], ["bob"], [], null, null, 9),
        ];
        foreach (var e in events) s = s.Apply(e);
        return s;
    }

    private static readonly MessageEnrichment Enriched = new(
        [new EnricherOutput("sentiment", "vader-1", JsonSerializer.SerializeToElement(new { compound = 0.42 }))], ["intent"]);
    private static readonly Caas.Actors.Media.MediaFile MediaSample =
        new("f_1", "acme", "c-1", "alice", "Katze – München.png", "image/png", 1234, new string('a', 64), 640, 480, null, At);

    /// <summary>A realistic instance of every type the serializer knows, with the optional parts both filled and empty.</summary>
    public static IReadOnlyList<object> Samples()
    {
        var state = State();
        var view = ConversationView.Of(state);
        var settings = new TenantSettingsState(120, 3_600, "DE", 2_000);
        var profile = new UserProfile("Alice Liddell", "Europe/Paris", "fr-FR");
        return
        [
            // conversation events
            new ConversationCreated(Meta, "c-1", ConversationTypes.Group, "Team", Members),
            new ConversationCreated(Meta, "d_0123", ConversationTypes.Direct, null, [new("alice", Role.Owner), new("bob", Role.Member)]),
            new ConversationUpdated(Meta, "Team ☕", Metadata),
            new ConversationUpdated(Meta, null, null),
            new ConversationDeleted(Meta),
            new MemberAdded(Meta, "dave", Role.Moderator),
            new MemberRemoved(Meta, "dave", "kicked"),
            new MemberRoleChanged(Meta, "bob", Role.Admin),
            new MessagePosted(Meta, 42, "m-42", Content),
            new MessageEdited(Meta, 42, "m-42", Content with { Text = "fixed" }),
            new MessageDeleted(Meta, 42, "m-42"),
            new MessagePosted(Meta, 44, "m-44", Content, MessageEnrichment.DeferredForLater) { EnrichmentDeferred = true },
            new MessageEnriched(Meta, 44, "m-44", Enriched),
            new ReactionAdded(Meta, 42, "m-42", "👍"),
            new ReactionRemoved(Meta, 42, "m-42", "👍"),
            new UserBanned(Meta, "mallory", At.AddHours(1), "spam"),
            new UserBanned(Meta, "mallory", null, null),
            new UserUnbanned(Meta, "mallory", "appeal granted"),
            new UserMuted(Meta, "dave", At.AddMinutes(10), "calm down"),
            new UserUnmuted(Meta, "dave", null),
            new UserKicked(Meta, "erin", At.AddMinutes(5), "cool off"),
            new CallUpdated(Meta, "call_1", "joined", "active", "video", "alice", At, ["alice", "bob"], ["carol"], ["bob"], null, null, 7),
            new CallUpdated(Meta with { ActorId = "system" }, "call_1", "ended", "ended", "audio", "alice", At, [], [], ["alice", "bob"], "completed", 95.5, 12),
            state,
            ConversationState.Empty(),
            // conversation commands, queries and replies
            new CreateConversation("acme", "c-1", "alice", ConversationTypes.Channel, "News", Members),
            new UpdateConversation("acme", "c-1", "alice", "Renamed", Metadata),
            new DeleteConversation("acme", "c-1", "alice"),
            new AddMember("acme", "c-1", "alice", "dave", Role.Member),
            new RemoveMember("acme", "c-1", "alice", "dave"),
            new ChangeRole("acme", "c-1", "alice", "bob", Role.Moderator),
            new PostMessage("acme", "c-1", "bob", "m-43", Content, TimeSpan.FromHours(24)),
            new PostMessage("acme", "c-1", "bob", "m-44", Content, TimeSpan.FromHours(24)) { AfterMessageId = "m-43" },
            new EditMessage("acme", "c-1", "bob", 43, Content),
            new RecordEnrichment("acme", "c-1", "bob", 43, "m-43", Enriched),
            new DeleteMessage("acme", "c-1", "bob", 43),
            new AddReaction("acme", "c-1", "bob", 43, "🎉"),
            new RemoveReaction("acme", "c-1", "bob", 43, "🎉"),
            new Moderate("acme", "c-1", "alice", ModerationAction.Ban, "mallory", TimeSpan.FromMinutes(90), "spam"),
            new Moderate("acme", "c-1", "alice", ModerationAction.Unmute, "dave", null, null),
            new GetConversation("acme", "c-1", "bob"),
            new GetReadAccess("acme", "c-1", "bob"),
            new AdmitMessage("acme", "c-1", "bob", "m-9", TimeSpan.FromHours(24)),
            new MessageAdmitted("c-1"),
            new GetOwnMessage("acme", "c-1", "bob", "m-43"),
            new OwnMessage(43),
            view,
            new ConversationReply(view, Created: true),
            new DirectConversationDeleted("d_0123"),
            new MessageAck("m-43", "c-1", 43, "bob", Content, At, Repeat: false),
            new MessageAck("m-43", "c-1", 43, "bob", null, At, Repeat: true),
            MessageChanged.Of(1, state.Messages[1], Content, At.AddMinutes(3)),
            MessageChanged.Of(2, state.Messages[2], null, null),
            new ReadAccess(43, Role.Admin),
            // user sessions
            new PresenceChanged(Meta, PresenceStatus.Online),
            new ReadMarked(Meta, "c-1", 43),
            new DeliveredMarked(Meta, "c-1", 97),
            new MarkDelivered("acme", "alice", "c-1", 97),
            new GetDeliveredMarker("acme", "alice", "c-1"),
            new DeliveredMarker("c-1", 97),
            UserSessionState.Empty with { DeliveredMarkers = ImmutableDictionary<string, long>.Empty.Add("c-1", 97) },
            new ProfileUpdated(Meta, "Alice", "Europe/Paris", "fr-FR"),
            new ProfileUpdated(Meta, null, null, "de"),
            new UserSessionState(PresenceStatus.Offline, At,
                ImmutableDictionary<string, long>.Empty.Add("c-1", 43).Add("d_0123", 7), profile),
            UserSessionState.Empty,
            new ConnectionOpened("acme", "alice", "conn-1", "akka.tcp://caas@10.0.0.7:4053"),
            new ConnectionClosed("acme", "alice", "conn-1"),
            new GetPresence("acme", "alice"),
            new MarkRead("acme", "alice", "c-1", 43),
            new GetProfile("acme", "alice"),
            new GetReadMarkers("acme", "alice"),
            new ReadMarkers(ImmutableDictionary<string, long>.Empty.Add("c-1", 43)),
            new UpdateProfile("acme", "alice", "Alice", null, "fr-FR"),
            new AcquireMessageSlot("acme", "alice", 60),
            new ReleaseMessageSlot("acme", "alice", At.UtcTicks),
            new AcquireMessageSlot("acme", "alice", 60, 1_000),
            new CountRejectedAttempt("acme", "alice", 30),
            new LeaseMessageSlots("acme", "alice", "akka.tcp://caas@10.0.0.7:4053/user/$a", "5f1c2e9a-3", [12_000, 0], 2, 16, 60, 1_000),
            new LeaseMessageSlots("acme", "alice", "akka://caas/user/$b", null, [], 0, 0, 60, 1_000),
            new RecallMessageSlots("acme", "alice"),
            new EraseUser("acme", "bob", "root", ["k-1", "k-2"]),
            new UserErased(Meta with { ActorId = "root" }, "bob", ["k-1"]),
            new Caas.Actors.Privacy.DataKeysDestroyed("acme", "bob", ["k-1"]),
            new PresenceView("alice", PresenceStatus.Away, At, 2),
            new PresenceView("alice", PresenceStatus.Online, null, 1),
            new ProfileView("alice", profile),
            new ReadMarker("c-1", 43),
            new MessageSlotGranted(At.UtcTicks),
            new MessageSlotsLeased("5f1c2e9a-4", 15, TimeSpan.FromSeconds(5), Carried: true),
            // tenants
            new TenantSettingsChanged(Meta, settings),
            settings,
            TenantSettingsState.Default,
            new GetTenantSettings("acme"),
            new UpdateTenantSettings("acme", "root", 120, null, "DE", null),
            // media
            new Caas.Actors.Media.MediaUploaded(Meta, MediaSample),
            new Caas.Actors.Media.MediaDeleted(Meta, "f_1", "c-1"),
            new Caas.Actors.Media.MediaPurged(Meta, "f_1"),
            new Caas.Actors.Media.RecordPurge("acme", "f_1"),
            new UpdateTenantMediaSettings("acme", "root", new TenantMediaSettings(1000, 10, 100, 5, ["image/*"], 30)),
            MediaSample,
            MediaSample with { Width = null, Height = null, DurationMs = 61_000, DeletedAt = At, DeletedBy = "bob" },
            new Caas.Actors.Media.MediaState(MediaSample),
            Caas.Actors.Media.MediaState.Empty,
            new Caas.Actors.Media.RegisterMedia("acme", "f_1", "alice", "c-1", "cat.png", "image/png", 1234, new string('a', 64), 640, 480),
            new Caas.Actors.Media.DeleteMedia("acme", "f_1", "bob", ActorModerates: true),
            new Caas.Actors.Media.GetMedia("acme", "f_1", IncludeDeleted: true),
            new Caas.Actors.Media.MediaProcessed(Meta, "f_1", new Caas.Actors.Media.MediaThumbnail("image/jpeg", 320, 240, 9000), 640, 480, null, null),
            new Caas.Actors.Media.MediaProcessed(Meta, "f_1", null, 60_000, 60_000, null, "too_many_pixels"),
            new Caas.Actors.Media.MediaThumbnail("image/jpeg", 320, 240, 9000),
            MediaSample with { Thumbnail = new Caas.Actors.Media.MediaThumbnail("image/jpeg", 320, 240, 9000) },
            new Caas.Actors.Media.RecordThumbnail("acme", "f_1", null, 10, 20, 3000, "not_applicable"),
            // live rooms
            new ConversationEventPublished("acme", "c-1", 7, new MessagePosted(Meta, 42, "m-42", Content)),
            new ConversationEventPublished("acme", "c-1", 8, new UserKicked(Meta, "mallory", null, null)),
            new ConversationEventsPublished([
                new ConversationEventPublished("acme", "c-1", 9, new MessagePosted(Meta, 43, "m-43", Content)),
                new ConversationEventPublished("acme", "c-1", 10, new UserKicked(Meta, "mallory", null, null))]),
            new RoomSignal("acme", "c-1", RoomSignalKinds.ReadReceipt, "bob", "conn-1", "akka.tcp://caas@127.0.0.1:4053", 42, At),
            // calls
            new Caas.Actors.Calls.CallStarted(Meta, "call_1", "c-1", "alice", "video", ["bob", "carol"]),
            new Caas.Actors.Calls.CallParticipantJoined(Meta, "call_1", "bob"),
            new Caas.Actors.Calls.CallParticipantDeclined(Meta, "call_1", "carol"),
            new Caas.Actors.Calls.CallParticipantLeft(Meta, "call_1", "bob", "disconnected", 61.5),
            new Caas.Actors.Calls.CallMissed(Meta, "call_1", ["dave"]),
            new Caas.Actors.Calls.CallEnded(Meta, "call_1", "ended", "alice", 120.25, ["alice", "bob"]),
            new Caas.Actors.Calls.CallEnded(Meta, "call_2", "missed", null, 0, []),
            new Caas.Actors.Calls.StartCall("acme", "c-1", "alice", "call_1", "audio", ["alice", "bob"]),
            new Caas.Actors.Calls.AcceptCall("acme", "c-1", "bob", "call_1", "conn-1"),
            new Caas.Actors.Calls.AcceptCall("acme", "c-1", "bob", "call_1"),
            new Caas.Actors.Calls.DeclineCall("acme", "c-1", "carol", "call_1"),
            new Caas.Actors.Calls.LeaveCall("acme", "c-1", "bob", "call_1", "disconnected"),
            new Caas.Actors.Calls.EndCall("acme", "c-1", "alice", "call_1", Role.Moderator),
            new Caas.Actors.Calls.RingTimedOut("acme", "c-1", "system", "call_1"),
            new Caas.Actors.Calls.CheckSignal("acme", "c-1", "alice", "call_1", "bob"),
            new Caas.Actors.Calls.CallReply("call_1", "active", ["alice", "bob"], ["carol"]),
            new Caas.Actors.Calls.CallReply("call_1", "ended", [], [], "completed"),
            new Caas.Actors.Calls.CallNotice("acme", ["bob"], "callRinging", "{\"call_id\":\"call_1\"}", "conn-2"),
            new RoomSignal("acme", "c-1", RoomSignalKinds.Delivered, "bob", "", "akka.tcp://caas@127.0.0.1:4053", null, At, EventSeq: 97),
            new RoomTopicSubscribe("acme", "c-1"),
            new RoomTopicUnsubscribe("acme", "c-1"),
            new RoomTopicSubscribed("acme", "c-1"),
            new GetRoomTopic("acme", "c-1"),
            new RoomTopicView("acme", "c-1", 3),
            new Caas.Actors.Calls.GetCallHistory("acme", "c-1", "alice", 20),
            new Caas.Actors.Calls.CallHistory(new Caas.Actors.Calls.CallReply("call_2", "ringing", ["alice"], ["bob"]), "audio", "alice", At,
                [new Caas.Actors.Calls.CallSummary("call_1", "alice", "video", At, At.AddMinutes(2), "completed", 95.5, ["alice", "bob"])]),
            new Caas.Actors.Calls.CallHistory(null, null, null, null, []),
            new Caas.Actors.Calls.CallParticipantDeclined(Meta, "call_1", "dave", "busy"),
            new Caas.Actors.Calls.CallEnded(Meta, "call_3", "busy", null, 0, ["alice"],
                [new Caas.Actors.Calls.ParticipantQuality("alice", 2, new Caas.Actors.Calls.MetricStats(2, 40, 60, 100), null, null, null)]),
            new Caas.Actors.Calls.CallSummaryPosted(Meta, "call_1", "call_1", 42),
            new RecordCallUpdate("acme", "c-1", "alice",
                new CallUpdated(Meta, "call_1", "started", "ringing", "audio", "alice", At, ["alice"], ["bob"], [], null, null, 1)),
            new Caas.Actors.Calls.StartCall("acme", "c-1", "alice", "call_1", "audio", ["alice", "bob"], ["bob"]),
            new Caas.Actors.Calls.ReportCallQuality("acme", "c-1", "bob", "call_1", new Caas.Actors.Calls.CallQualitySample(40.5, null, 0.1, 900)),
            new Caas.Actors.Calls.CallPresenceUpdate("acme", "call_1", ["alice"], ["bob"]),
            new Caas.Actors.Calls.GetBusyUsers("acme", ["bob", "carol"]),
            new Caas.Actors.Calls.BusyUsers(new Dictionary<string, string> { ["bob"] = "call_9" }),
            new PostCallSummary("acme", "c-1", "alice", "call_1", new MessageContent("call", "{\"call_id\":\"call_1\"}")),
            new Caas.Actors.Calls.CallQualityCheckpointed(Meta, "call_1",
                [new Caas.Actors.Calls.ParticipantQuality("alice", 3, new Caas.Actors.Calls.MetricStats(3, 40, 60, 150), null, new Caas.Actors.Calls.MetricStats(1, 0.5, 0.5, 0.5), null)]),
            new Caas.Actors.Calls.CallHeartbeat("acme", "c-1", "system", "call_1", ["alice", "bob"]),
            // call recordings
            new Caas.Actors.Calls.CallRecordingRequested(Meta, "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e", "alice", ["bob", "carol"], At.AddSeconds(30)),
            new Caas.Actors.Calls.CallRecordingConsented(Meta, "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e", "bob", true, "hub"),
            new Caas.Actors.Calls.CallRecordingStarted(Meta, "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e"),
            new Caas.Actors.Calls.CallRecordingStopped(Meta, "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e", "consent_pending", null, ["dave"], At.AddSeconds(60)),
            new Caas.Actors.Calls.CallRecordingDeclined(Meta, "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e", "timeout", ["carol"]),
            new Caas.Actors.Calls.CallRecordingStored(Meta, "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e",
                new Caas.Actors.Calls.RecordingFile("f_1", "call.webm", "video/webm", 123_456, new string('a', 64), "file:acme/f_1")),
            new Caas.Actors.Calls.CallRecordingDeleted(Meta, "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e", "root", "admin"),
            new Caas.Actors.Calls.RequestRecording("acme", "c-1", "alice", "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e"),
            new Caas.Actors.Calls.ConsentRecording("acme", "c-1", "bob", "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e", false),
            new Caas.Actors.Calls.StopRecording("acme", "c-1", "alice", "call_1", Role.Moderator),
            new Caas.Actors.Calls.RecordingConsentTimedOut("acme", "c-1", "system", "call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e"),
            new Caas.Actors.Calls.CheckRecordingUpload("acme", "c-1", "alice", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e"),
            new Caas.Actors.Calls.AttachRecording("acme", "c-1", "alice", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e",
                new Caas.Actors.Calls.RecordingFile("f_1", "call.webm", "video/webm", 123_456, new string('a', 64), "s3://media/acme/f_1")),
            new Caas.Actors.Calls.DeleteRecording("acme", "c-1", "root", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e", "erasure"),
            new Caas.Actors.Calls.GetRecording("acme", "c-1", "root", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e"),
            new Caas.Actors.Calls.RecordingInfo("rec_0190a1b2c3d4e5f60718293a4b5c6d7e", "call_1", "alice", At, "recorded",
                [new Caas.Actors.Calls.RecordingConsent("alice", true, At, "requested"), new Caas.Actors.Calls.RecordingConsent("bob", true, At.AddSeconds(2), "hub")],
                At.AddSeconds(2), At.AddSeconds(62), 60, "call_ended",
                new Caas.Actors.Calls.RecordingFile("f_1", "call.webm", "video/webm", 123_456, new string('a', 64), "file:acme/f_1")),
            new Caas.Actors.Calls.RecordingReply("call_1", "rec_0190a1b2c3d4e5f60718293a4b5c6d7e", "pending", ["bob"],
                [new Caas.Actors.Calls.RecordingConsent("alice", true, At, "requested")]),
            // shared
            new Rejection(ErrorCodes.ValidationFailed, "The request is not valid.",
                new Dictionary<string, string[]> { ["content.text"] = ["Must not be empty."], ["user_id"] = ["Not valid.", "Too long."] }),
            new Rejection(ErrorCodes.RateLimited, "At most 60 messages a minute.", RetryAfterSeconds: 7),
            new Done("DeleteConversation"),
            StopEntity.Instance,
        ];
    }

    public static TheoryData<int, string> SampleCases()
    {
        var data = new TheoryData<int, string>();
        var samples = Samples();
        for (var i = 0; i < samples.Count; i++) data.Add(i, CaasSerializer.Manifests[samples[i].GetType()]);
        return data;
    }

    private static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    private static string Json(object o) => JsonSerializer.Serialize(o, o.GetType(), CaasSerializer.Json);

    private static IEnumerable<Type> CaasMessageTypes() =>
        typeof(ICaasMessage).Assembly.GetTypes().Where(t => typeof(ICaasMessage).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false });

    [Theory]
    [MemberData(nameof(SampleCases))]
    public void Every_type_round_trips_through_the_bound_serializer(int index, string manifest)
    {
        var sample = Samples()[index];
        var serialization = fixture.System.Serialization;

        var serializer = serialization.FindSerializerFor(sample);
        Assert.IsType<CaasSerializer>(serializer);
        Assert.Equal(CaasSerializer.Id, serializer.Identifier);
        Assert.Equal(manifest, Akka.Serialization.Serialization.ManifestFor(serializer, sample));

        var bytes = serializer.ToBinary(sample);
        var back = serialization.Deserialize(bytes, serializer.Identifier, manifest);

        Assert.IsType(sample.GetType(), back);
        Assert.Equal(Text(bytes), Text(serializer.ToBinary(back)));

        // Equal text could still hide a field that is never written; every constructor parameter must be there.
        using var doc = JsonDocument.Parse(bytes);
        var ctor = sample.GetType().GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        foreach (var p in ctor.GetParameters())
            Assert.True(doc.RootElement.TryGetProperty(JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name!), out _),
                $"{manifest} does not write {p.Name}");
    }

    [Fact]
    public void The_samples_cover_every_manifest()
    {
        var covered = Samples().Select(s => s.GetType()).ToHashSet();
        var missing = CaasSerializer.Manifests.Keys.Where(t => !covered.Contains(t)).Select(t => t.Name).Order().ToArray();
        Assert.True(missing.Length == 0, $"Add a realistic sample to SerializerTests.Samples() for: {string.Join(", ", missing)}");
    }

    [Fact]
    public void Every_caas_message_type_has_a_manifest_and_every_manifest_type_is_bound_to_the_serializer()
    {
        var withoutManifest = CaasMessageTypes().Where(t => !CaasSerializer.Manifests.ContainsKey(t)).Select(t => t.FullName).Order().ToArray();
        Assert.Empty(withoutManifest);
        // the HOCON binding is by ICaasMessage: a manifest on any other type would never be used
        var unbound = CaasSerializer.Manifests.Keys.Where(t => !typeof(ICaasMessage).IsAssignableFrom(t) || t.IsAbstract).Select(t => t.Name).ToArray();
        Assert.Empty(unbound);
        Assert.Equal(CaasMessageTypes().Count(), CaasSerializer.Manifests.Count);
    }

    [Fact]
    public void Manifests_are_unique_and_legacy_manifests_stay_apart_from_current_ones()
    {
        var duplicates = CaasSerializer.Manifests.Values.GroupBy(m => m).Where(g => g.Count() > 1).Select(g => g.Key).ToArray();
        Assert.Empty(duplicates);
        var current = CaasSerializer.Manifests.Values.ToHashSet();
        Assert.All(CaasSerializer.Legacy.Keys, m => Assert.DoesNotContain(m, current));
        // an old manifest is read by a type that still has a current manifest
        Assert.All(CaasSerializer.Legacy.Values, t => Assert.Contains(t, CaasSerializer.Manifests.Keys));
    }

    [Fact]
    public void Everything_stored_has_a_versioned_manifest()
    {
        // events go to the journal and states to the snapshot store: both must be readable years later
        var stored = CaasSerializer.Manifests.Keys.Where(t => typeof(IDomainEvent).IsAssignableFrom(t) || t.Name.EndsWith("State", StringComparison.Ordinal)).ToArray();
        Assert.Contains(typeof(MessagePosted), stored);
        Assert.Contains(typeof(ConversationState), stored);
        Assert.All(stored, t => Assert.Matches(VersionedManifest(), CaasSerializer.Manifests[t]));
        Assert.All(CaasSerializer.Legacy.Keys, m => Assert.Matches(VersionedManifest(), m));
    }

    [GeneratedRegex(@"^[a-z]+(\.[a-z-]+)+\.v[0-9]+$")]
    private static partial Regex VersionedManifest();

    [Fact]
    public void Stored_json_is_snake_case_and_readable()
    {
        var posted = new MessagePosted(Meta, 42, "m-42", Content);
        var json = Text(fixture.System.Serialization.FindSerializerFor(posted).ToBinary(posted));

        Assert.Contains("\"message_id\":\"m-42\"", json);
        Assert.Contains("\"seq\":42", json);
        Assert.Contains("\"meta\":{\"tenant_id\":\"acme\",\"actor_id\":\"alice\",\"occurred_at\":\"2026-03-01T12:34:56.1234567+00:00\"}", json);
        // text in any script stays as written, so an auditor reads the journal without decoding it
        Assert.Contains("héllo — 日本語", json);
        Assert.DoesNotContain("MessageId", json);

        var created = new ConversationCreated(Meta, "c-1", ConversationTypes.Group, null, Members);
        using var doc = JsonDocument.Parse(Json(created));
        Assert.Equal("owner", doc.RootElement.GetProperty("members")[0].GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("title").ValueKind);
        Assert.Equal("ban", JsonDocument.Parse(Json(new Moderate("acme", "c-1", "alice", ModerationAction.Ban, "m", null, null)))
            .RootElement.GetProperty("action").GetString());
        // dictionary keys are data, not names: they are kept as written
        Assert.Contains("\"CamelCaseKey\":\"kept as written\"", Json(new ConversationUpdated(Meta, null, Metadata)));
    }

    [Fact]
    public void Older_events_without_a_field_added_later_read_with_its_default()
    {
        var serializer = (CaasSerializer)fixture.System.Serialization.FindSerializerFor(new Done("x"));
        object Read(string manifest, string json) => serializer.FromBinary(Encoding.UTF8.GetBytes(json), manifest);
        const string meta = """{"tenant_id":"acme","actor_id":"alice","occurred_at":"2025-01-01T00:00:00+00:00"}""";

        // A profile event from before locales: replaying it keeps the locale the user had.
        var oldProfile = Assert.IsType<ProfileUpdated>(Read("session.profile-updated.v1",
            $$"""{"meta":{{meta}},"display_name":"Alice","time_zone":"Europe/Paris"}"""));
        Assert.Null(oldProfile.Locale);
        var replayed = UserSessionState.Empty.Apply(oldProfile);
        Assert.Equal(new UserProfile("Alice", "Europe/Paris", "en"), replayed.Profile);

        // A ban from before expiries and reasons: a ban until lifted.
        var oldBan = Assert.IsType<UserBanned>(Read("conv.user-banned.v1", $$"""{"meta":{{meta}},"user_id":"mallory"}"""));
        Assert.Null(oldBan.Until);
        Assert.Null(oldBan.Reason);
        Assert.True(ConversationState.Empty().Apply(oldBan).IsBanned("mallory", DateTimeOffset.MaxValue));

        // Tenant settings stored before a knob existed read that knob's default, not zero: a zero message size
        // or rate would refuse every message of the tenant.
        var oldSettings = Assert.IsType<TenantSettingsChanged>(Read("tenant.settings-changed.v1",
            $$$"""{"meta":{{{meta}}},"settings":{"message_rate_per_minute":30,"idempotency_horizon_seconds":600}}"""));
        Assert.Equal(TenantSettingsState.Default with { MessageRatePerMinute = 30, IdempotencyHorizonSeconds = 600 }, oldSettings.Settings);
        Assert.Equal(TenantSettingsState.Default, Read("tenant.settings.v1", "{}"));

        // and fields a newer writer added are ignored by this reader rather than failing it
        var newer = Assert.IsType<MessagePosted>(Read("conv.message-posted.v1",
            $$"""{"meta":{{meta}},"seq":3,"message_id":"m-3","content":{"type":"text","text":"hi","mentions":["bob"]},"thread_id":"t-1"}"""));
        Assert.Equal(3, newer.Seq);
        Assert.Equal("hi", newer.Content.Text);
    }

    [Fact]
    public void Unknown_types_and_manifests_fail_loudly()
    {
        var serializer = (CaasSerializer)fixture.System.Serialization.FindSerializerFor(new Done("x"));
        Assert.Throws<SerializationException>(() => serializer.FromBinary("{}"u8.ToArray(), "conv.message-posted.v0"));
        Assert.Throws<ArgumentException>(() => serializer.Manifest(new Member("a", Role.Member, At)));
        Assert.Throws<SerializationException>(() => serializer.FromBinary("null"u8.ToArray(), "done"));
    }
}

/// <summary>What an auditor finds in the database: the journal row itself, read with plain SQL.</summary>
public abstract class StoredEventSpecs(string kind) : JournalSpec(kind)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Journal_rows_carry_the_manifest_and_readable_snake_case_json()
    {
        var actor = Sys.ActorOf(ConversationActor.PropsFor(Ids.EntityId("acme", "audit-1"), Settings()));
        actor.Tell(new CreateConversation("acme", "audit-1", "alice", ConversationTypes.Group, "Audit", []), TestActor);
        ExpectMsg<ConversationReply>(Wait);
        actor.Tell(new PostMessage("acme", "audit-1", "alice", "m-1", new MessageContent("text", "Grüße, 世界"), TimeSpan.FromHours(1)), TestActor);
        ExpectMsg<MessageAck>(Wait);

        var rows = await JournalRows(ConversationActor.PersistenceIdOf(Ids.EntityId("acme", "audit-1")));

        Assert.Equal(new[] { CaasSerializer.Manifests[typeof(ConversationCreated)], CaasSerializer.Manifests[typeof(MessagePosted)] },
            rows.Select(r => r.Manifest).ToArray());
        Assert.All(rows, r => Assert.Equal(CaasSerializer.Id, r.Identifier));
        var posted = Encoding.UTF8.GetString(rows[1].Payload);
        Assert.Contains("\"message_id\":\"m-1\"", posted);
        Assert.Contains("\"tenant_id\":\"acme\"", posted);
        Assert.Contains("\"text\":\"Grüße, 世界\"", posted);
    }

    private async Task<List<(string Manifest, int Identifier, byte[] Payload)>> JournalRows(string persistenceId)
    {
        const string sql = "SELECT manifest, identifier, message FROM journal WHERE persistence_id = @pid ORDER BY sequence_number";
        await using System.Data.Common.DbConnection connection = Storage.IsPostgres
            ? new Npgsql.NpgsqlConnection(Storage.JournalConnectionString)
            : new Microsoft.Data.Sqlite.SqliteConnection(Storage.JournalConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var p = command.CreateParameter();
        p.ParameterName = "pid";
        p.Value = persistenceId;
        command.Parameters.Add(p);
        var rows = new List<(string, int, byte[])>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            rows.Add((reader.GetString(0), Convert.ToInt32(reader.GetValue(1)), (byte[])reader.GetValue(2)));
        return rows;
    }
}

public sealed class StoredEventsOnSqlite() : StoredEventSpecs("sqlite");

public sealed class StoredEventsOnPostgres() : StoredEventSpecs("postgres");
