using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Unicode;
using Akka.Actor;
using System.Text.Json.Serialization.Metadata;
using Akka.Serialization;
using Caas.Actors.Privacy;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Rooms;
using Caas.Actors.Sessions;
using Caas.Actors.Tenants;

namespace Caas.Actors.Serialization;

/// <summary>
/// The one serializer for every CAAS message, event and state: System.Text.Json (snake_case, so events stay
/// readable in the database for audits) with an explicit, versioned manifest per type. A type that changes shape
/// gets a new manifest; the old one stays in <see cref="Legacy"/> so every stored version keeps reading.
/// </summary>
public sealed class CaasSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 4217;

    /// <summary>
    /// The stored form (journal, snapshots, <c>chat.events</c>): a sealed event (<see cref="ISealable"/>) writes its
    /// ciphertext and key id only, never its plaintext content or enrichment.
    /// </summary>
    public static readonly JsonSerializerOptions Json = Options(SealedForm.Stored);

    /// <summary>Between nodes (live room fan-out): everything, plaintext included; never stored.</summary>
    public static readonly JsonSerializerOptions WireJson = Options(SealedForm.Wire);

    /// <summary>What a reader is shown (audit replay): the opened content, without the ciphertext.</summary>
    public static readonly JsonSerializerOptions ViewJson = Options(SealedForm.View);

    private enum SealedForm { Stored, Wire, View }

    private static JsonSerializerOptions Options(SealedForm form) => new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        // Letters of every script stay as written (the default escapes all non-ASCII), so an auditor reads the text. The
        // stored form is never put into a page as it is, so it also leaves HTML's characters (+ < > & ' `) unescaped: the
        // base64 of every sealed event holds a few '+', and each one escaped (\u002B) sent every read of the row down the
        // reader's slow path (validating and unescaping: about 5% of a recovery's samples; README, "Recovery reads").
        // Rows written before keep their escapes; both read the same, and their links are over their own stored bytes.
        Encoder = form == SealedForm.Stored ? JavaScriptEncoder.UnsafeRelaxedJsonEscaping : JavaScriptEncoder.Create(UnicodeRanges.All),
        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { info => HideSealed(info, form) } },
    };

    private static void HideSealed(JsonTypeInfo info, SealedForm form)
    {
        if (form == SealedForm.Wire || !typeof(ISealable).IsAssignableFrom(info.Type)) return;
        foreach (var property in info.Properties)
        {
            if (form == SealedForm.View && property.Name == "sealed") property.ShouldSerialize = static (_, _) => false;
            if (form == SealedForm.Stored && property.Name is "content" or "enrichment")
            {
                // Not even read once sealed: reading the content of an event opened on use would decrypt it.
                var get = property.Get!;
                property.Get = owner => ((ISealable)owner).Sealed is null ? get(owner) : null;
                property.ShouldSerialize = static (owner, _) => ((ISealable)owner).Sealed is null;
            }
        }
    }

    private readonly Privacy.IContentVault? _vault = ContentVaultSetup.Of(system);

    /// <summary>Current manifests. Events are <c>kind.name.vN</c>; commands and replies need no version history.</summary>
    public static readonly IReadOnlyDictionary<Type, string> Manifests = new Dictionary<Type, string>
    {
        // conversation events
        [typeof(ConversationCreated)] = "conv.created.v1",
        [typeof(ConversationUpdated)] = "conv.updated.v1",
        [typeof(ConversationDeleted)] = "conv.deleted.v1",
        [typeof(MemberAdded)] = "conv.member-added.v1",
        [typeof(MemberRemoved)] = "conv.member-removed.v1",
        [typeof(MemberRoleChanged)] = "conv.member-role-changed.v1",
        [typeof(MessagePosted)] = "conv.message-posted.v2",
        [typeof(MessageEdited)] = "conv.message-edited.v1",
        [typeof(MessageDeleted)] = "conv.message-deleted.v1",
        [typeof(MessageEnriched)] = "conv.message-enriched.v1",
        [typeof(ReactionAdded)] = "conv.reaction-added.v1",
        [typeof(ReactionRemoved)] = "conv.reaction-removed.v1",
        [typeof(UserBanned)] = "conv.user-banned.v1",
        [typeof(UserUnbanned)] = "conv.user-unbanned.v1",
        [typeof(UserMuted)] = "conv.user-muted.v1",
        [typeof(UserUnmuted)] = "conv.user-unmuted.v1",
        [typeof(UserKicked)] = "conv.user-kicked.v1",
        [typeof(CallUpdated)] = "conv.call-updated.v1",
        [typeof(ConversationState)] = "conv.state.v1",
        // conversation commands and replies
        [typeof(CreateConversation)] = "conv.cmd.create",
        [typeof(UpdateConversation)] = "conv.cmd.update",
        [typeof(DeleteConversation)] = "conv.cmd.delete",
        [typeof(AddMember)] = "conv.cmd.add-member",
        [typeof(RemoveMember)] = "conv.cmd.remove-member",
        [typeof(ChangeRole)] = "conv.cmd.change-role",
        [typeof(PostMessage)] = "conv.cmd.post-message",
        [typeof(EditMessage)] = "conv.cmd.edit-message",
        [typeof(RecordEnrichment)] = "conv.cmd.record-enrichment",
        [typeof(DeleteMessage)] = "conv.cmd.delete-message",
        [typeof(AddReaction)] = "conv.cmd.add-reaction",
        [typeof(RemoveReaction)] = "conv.cmd.remove-reaction",
        [typeof(Moderate)] = "conv.cmd.moderate",
        [typeof(GetConversation)] = "conv.qry.get",
        [typeof(GetReadAccess)] = "conv.qry.read-access",
        [typeof(AdmitMessage)] = "conv.qry.admit-message",
        [typeof(MessageAdmitted)] = "conv.rep.message-admitted",
        [typeof(GetOwnMessage)] = "conv.qry.own-message",
        [typeof(ConversationView)] = "conv.rep.view",
        [typeof(ConversationReply)] = "conv.rep.conversation",
        [typeof(DirectConversationDeleted)] = "conv.rep.direct-deleted",
        [typeof(MessageAck)] = "conv.rep.message-ack",
        [typeof(MessageChanged)] = "conv.rep.message-changed",
        [typeof(ReadAccess)] = "conv.rep.read-access",
        [typeof(OwnMessage)] = "conv.rep.own-message",
        // user sessions
        [typeof(PresenceChanged)] = "session.presence-changed.v1",
        [typeof(ReadMarked)] = "session.read-marked.v1",
        [typeof(DeliveredMarked)] = "session.delivered-marked.v1",
        [typeof(ProfileUpdated)] = "session.profile-updated.v1",
        [typeof(UserErased)] = "session.user-erased.v1",
        [typeof(UserSessionState)] = "session.state.v1",
        [typeof(ConnectionOpened)] = "session.cmd.connection-opened",
        [typeof(ConnectionClosed)] = "session.cmd.connection-closed",
        [typeof(GetPresence)] = "session.qry.presence",
        [typeof(MarkRead)] = "session.cmd.mark-read",
        [typeof(MarkDelivered)] = "session.cmd.mark-delivered",
        [typeof(GetDeliveredMarker)] = "session.qry.delivered-marker",
        [typeof(GetProfile)] = "session.qry.profile",
        [typeof(GetReadMarkers)] = "session.qry.read-markers",
        [typeof(ReadMarkers)] = "session.rep.read-markers",
        [typeof(UpdateProfile)] = "session.cmd.update-profile",
        [typeof(AcquireMessageSlot)] = "session.cmd.acquire-slot",
        [typeof(ReleaseMessageSlot)] = "session.cmd.release-slot",
        [typeof(LeaseMessageSlots)] = "session.cmd.lease-slots",
        [typeof(RecallMessageSlots)] = "session.cmd.recall-slots",
        [typeof(CountRejectedAttempt)] = "session.cmd.count-rejected",
        [typeof(EraseUser)] = "session.cmd.erase-user",
        [typeof(PresenceView)] = "session.rep.presence",
        [typeof(ProfileView)] = "session.rep.profile",
        [typeof(ReadMarker)] = "session.rep.read-marker",
        [typeof(DeliveredMarker)] = "session.rep.delivered-marker",
        [typeof(MessageSlotGranted)] = "session.rep.slot-granted",
        [typeof(MessageSlotsLeased)] = "session.rep.slots-leased",
        // tenants
        [typeof(TenantSettingsChanged)] = "tenant.settings-changed.v1",
        [typeof(TenantSettingsState)] = "tenant.settings.v1",
        [typeof(GetTenantSettings)] = "tenant.qry.settings",
        [typeof(UpdateTenantSettings)] = "tenant.cmd.update-settings",
        [typeof(UpdateTenantMediaSettings)] = "tenant.cmd.update-media",
        // media
        [typeof(Media.MediaUploaded)] = "media.uploaded.v1",
        [typeof(Media.MediaDeleted)] = "media.deleted.v1",
        [typeof(Media.MediaFile)] = "media.file.v1",
        [typeof(Media.MediaState)] = "media.state.v1",
        [typeof(Media.RegisterMedia)] = "media.cmd.register",
        [typeof(Media.DeleteMedia)] = "media.cmd.delete",
        [typeof(Media.GetMedia)] = "media.qry.get",
        [typeof(Media.MediaProcessed)] = "media.processed.v1",
        [typeof(Media.MediaThumbnail)] = "media.thumbnail.v1",
        [typeof(Media.RecordThumbnail)] = "media.cmd.record-thumbnail",
        [typeof(Media.MediaPurged)] = "media.purged.v1",
        [typeof(Media.RecordPurge)] = "media.cmd.record-purge",
        // live rooms (DistributedPubSub)
        [typeof(ConversationEventPublished)] = "room.event-published",
        [typeof(ConversationEventsPublished)] = "room.events-published",
        [typeof(RoomSignal)] = "room.signal",
        // sharded room topics (caas.rooms.topics = sharded)
        [typeof(RoomTopicSubscribe)] = "room.topic.subscribe",
        [typeof(RoomTopicUnsubscribe)] = "room.topic.unsubscribe",
        [typeof(RoomTopicSubscribed)] = "room.topic.subscribed",
        [typeof(GetRoomTopic)] = "room.topic.get",
        [typeof(RoomTopicView)] = "room.topic.view",
        // calls (issue #16)
        [typeof(Calls.CallStarted)] = "call.started.v1",
        [typeof(Calls.CallParticipantJoined)] = "call.participant-joined.v1",
        [typeof(Calls.CallParticipantDeclined)] = "call.participant-declined.v1",
        [typeof(Calls.CallParticipantLeft)] = "call.participant-left.v1",
        [typeof(Calls.CallMissed)] = "call.missed.v1",
        [typeof(Calls.CallEnded)] = "call.ended.v1",
        [typeof(Calls.StartCall)] = "call.cmd.start",
        [typeof(Calls.AcceptCall)] = "call.cmd.accept",
        [typeof(Calls.DeclineCall)] = "call.cmd.decline",
        [typeof(Calls.LeaveCall)] = "call.cmd.leave",
        [typeof(Calls.EndCall)] = "call.cmd.end",
        [typeof(Calls.RingTimedOut)] = "call.cmd.ring-timed-out",
        [typeof(Calls.CheckSignal)] = "call.qry.check-signal",
        [typeof(Calls.CallReply)] = "call.rep.call",
        [typeof(Calls.CallNotice)] = "call.notice",
        [typeof(Calls.GetCallHistory)] = "call.qry.history",
        [typeof(Calls.CallHistory)] = "call.rep.history",
        [typeof(Calls.CallSummaryPosted)] = "call.summary-posted.v1",
        [typeof(Calls.ReportCallQuality)] = "call.cmd.report-quality",
        [typeof(Calls.CallPresenceUpdate)] = "call.presence.update",
        [typeof(Calls.GetBusyUsers)] = "call.qry.busy",
        [typeof(Calls.BusyUsers)] = "call.rep.busy",
        [typeof(PostCallSummary)] = "conv.cmd.post-call-summary",
        [typeof(RecordCallUpdate)] = "conv.cmd.record-call-update",
        // call recordings with consent (issue #16)
        [typeof(Calls.CallQualityCheckpointed)] = "call.quality-checkpointed.v1",
        [typeof(Calls.CallHeartbeat)] = "call.cmd.heartbeat",
        [typeof(Calls.CallRecordingRequested)] = "call.recording-requested.v1",
        [typeof(Calls.CallRecordingConsented)] = "call.recording-consented.v1",
        [typeof(Calls.CallRecordingStarted)] = "call.recording-started.v1",
        [typeof(Calls.CallRecordingStopped)] = "call.recording-stopped.v1",
        [typeof(Calls.CallRecordingDeclined)] = "call.recording-declined.v1",
        [typeof(Calls.CallRecordingStored)] = "call.recording-stored.v1",
        [typeof(Calls.CallRecordingDeleted)] = "call.recording-deleted.v1",
        [typeof(Calls.RequestRecording)] = "call.cmd.request-recording",
        [typeof(Calls.ConsentRecording)] = "call.cmd.consent-recording",
        [typeof(Calls.StopRecording)] = "call.cmd.stop-recording",
        [typeof(Calls.RecordingConsentTimedOut)] = "call.cmd.recording-consent-timed-out",
        [typeof(Calls.CheckRecordingUpload)] = "call.qry.check-recording-upload",
        [typeof(Calls.AttachRecording)] = "call.cmd.attach-recording",
        [typeof(Calls.DeleteRecording)] = "call.cmd.delete-recording",
        [typeof(Calls.GetRecording)] = "call.qry.recording",
        [typeof(Calls.RecordingInfo)] = "call.rep.recording",
        [typeof(Calls.RecordingReply)] = "call.rep.recording-status",
        // erasure
        [typeof(DataKeysDestroyed)] = "privacy.data-keys-destroyed",
        // shared
        [typeof(Rejection)] = "rejection",
        [typeof(Done)] = "done",
        [typeof(StopEntity)] = "stop-entity",
    };

    /// <summary>Older manifests still read, each with the type that now reads it.</summary>
    public static readonly IReadOnlyDictionary<string, Type> Legacy = new Dictionary<string, Type>
    {
        ["conv.message-posted.v1"] = typeof(MessagePosted), // before enrichment results were stored
    };

    private static readonly Dictionary<string, Type> TypesByManifest =
        Manifests.ToDictionary(kv => kv.Value, kv => kv.Key).Concat(Legacy).ToDictionary(kv => kv.Key, kv => kv.Value);

    public override int Identifier => Id;

    public override string Manifest(object o) =>
        Manifests.TryGetValue(o.GetType(), out var m)
            ? m
            : throw new ArgumentException($"No manifest for {o.GetType().FullName}; add it to CaasSerializer.Manifests.");

    public override byte[] ToBinary(object obj) =>
        obj is IDomainEvent && Prepared.TryGetValue(obj, out var bytes) ? bytes : JsonSerializer.SerializeToUtf8Bytes(obj, obj.GetType(), Json);

    /// <summary>The stored form of <paramref name="obj"/> (what <see cref="ToBinary"/> writes when nothing was prepared).</summary>
    public static byte[] StoredBytes(object obj) => JsonSerializer.SerializeToUtf8Bytes(obj, obj.GetType(), Json);

    // Bytes an entity already serialized (to take the hash over them), keyed by the event instance it hands the journal:
    // the journal's ToBinary returns them instead of serializing the event a second time. Weak, so an entry lives as
    // long as the event object and no longer.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, byte[]> Prepared = new();

    /// <summary>
    /// Records that <paramref name="e"/>'s stored form is <paramref name="stored"/> (the caller guarantees they are
    /// what <see cref="StoredBytes"/> would write), so the journal's write does not serialize it again.
    /// </summary>
    public static void Prepare(IDomainEvent e, byte[] stored) => Prepared.AddOrUpdate(e, stored);

    /// <summary>
    /// Reads any stored version; a sealed event comes back opened (or erased) with the node's vault when its content
    /// is first read (<see cref="ContentSealing.OpenOnUse"/>), so recovery, which reads none, decrypts nothing.
    /// </summary>
    public override object FromBinary(byte[] bytes, string manifest) => FromBytes(bytes, manifest);

    /// <summary><see cref="FromBinary(byte[], string)"/> over bytes lent for the call (a journal row read in place): nothing keeps them.</summary>
    public object FromBytes(ReadOnlySpan<byte> bytes, string manifest)
    {
        if (!TypesByManifest.TryGetValue(manifest, out var type))
            throw new System.Runtime.Serialization.SerializationException($"Unknown manifest '{manifest}'.");
        // The journal's most common rows (posts, edits, deletes, reactions) have a direct reader; it declines anything else.
        var value = (object?)MessageEventReader.TryRead(manifest, bytes)
                    ?? JsonSerializer.Deserialize(bytes, type, Json)
                    ?? throw new System.Runtime.Serialization.SerializationException($"Null payload for {manifest}.");
        return value is ISealable { Sealed: not null } ? ContentSealing.OpenOnUse(value, _vault) : value;
    }
}
