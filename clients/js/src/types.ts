// Wire shapes of the CAAS REST API v1 and the chat hub (snake_case, times RFC 3339 UTC), as the server sends them.

export type Role = "owner" | "admin" | "moderator" | "member";
export type ConversationType = "direct" | "group" | "channel";

/** Content as the SDK sends it (`send`, `editMessage`, `rest.postMessage`): {type, text}; the server accepts "text". */
export interface Content {
  type: string;
  text: string | null;
}

/** A text message's content, as read. */
export interface TextContent {
  type: "text";
  text: string | null;
}

/** An attachment message's content, as read: the file (`media` once resolved) and an optional caption. */
export interface AttachmentContent {
  type: "image" | "file" | "audio" | "video";
  media_id: string;
  caption: string | null;
  media: {
    file_name: string;
    content_type: string;
    size: number;
    sha256: string;
    width: number | null;
    height: number | null;
    duration_ms: number | null;
    thumbnail_url: string | null;
  } | null;
  text?: undefined;
}

export type CallMedia = "audio" | "video";

/** Why a call ended: completed, ended (by EndCall), declined, missed, no_answer, busy. */
export type CallEndReason = "completed" | "ended" | "declined" | "missed" | "no_answer" | "busy" | (string & {});

/** One quality metric over a call's reports: min/avg/max over the `count` reports that carried it. */
export interface CallQualityStats {
  min: number;
  avg: number;
  max: number;
  count: number;
}

/** A participant's aggregated quality reports (`reportCallQuality`); a metric no report carried is null. */
export interface ParticipantCallQuality {
  user_id: string;
  reports: number;
  rtt_ms: CallQualityStats | null;
  jitter_ms: CallQualityStats | null;
  packet_loss_pct: CallQualityStats | null;
  bitrate_kbps: CallQualityStats | null;
}

/**
 * A finished call's summary, posted by the server into the call's conversation as a message from the call's starter.
 * Narrow with `content.type === "call"` or `isCallContent(content)` (which also checks the fields are there: a summary
 * whose starter was erased reads as `{type: "call", text: null}`).
 */
export interface CallContent {
  type: "call";
  call_id: string;
  media: CallMedia;
  started_by: string;
  started_at: string;
  ended_at: string;
  ended_by: string | null;
  reason: CallEndReason;
  duration_seconds: number;
  participants: string[];
  quality: ParticipantCallQuality[];
  text?: undefined;
}

/** A message's content as read: text, an attachment or a call summary (narrow on `type`). */
export type MessageContent = TextContent | AttachmentContent | CallContent;

/** Whether a message's content is a call summary (with its fields). */
export function isCallContent(content: unknown): content is CallContent {
  if (!content || typeof content !== "object") return false;
  const c = content as Record<string, unknown>;
  return c.type === "call" && typeof c.call_id === "string";
}

export interface Member {
  user_id: string;
  role: Role;
  joined_at: string;
}

export interface MessagePreview {
  message_id: string;
  seq: number;
  sender_id: string;
  created_at: string;
  deleted: boolean;
  content: MessageContent | null;
}

export interface Conversation {
  id: string;
  type: ConversationType;
  title: string | null;
  metadata: Record<string, string> | null;
  members: Member[];
  created_at: string;
  created_by: string;
  last_seq: number;
  last_message_at?: string | null;
  last_message?: MessagePreview | null;
  unread_count?: number;
}

export interface Message {
  message_id: string;
  conversation_id: string;
  seq: number;
  sender_id: string;
  content: MessageContent | null;
  created_at: string;
  edited_at?: string | null;
  deleted?: boolean;
  reactions?: Record<string, string[]>;
  versions?: { text: string | null; replaced_at: string }[];
  enrichment?: unknown;
  status: "persisted";
  /** The conversation's journal sequence, on servers that track delivery (see the README's "Tracked delivery"). */
  event_seq?: number;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Presence {
  user_id: string;
  status: string;
  last_seen: string | null;
}

export interface Profile {
  user_id?: string;
  display_name?: string | null;
  time_zone?: string | null;
  locale?: string | null;
  [key: string]: unknown;
}

export type ModerationAction = "ban" | "unban" | "mute" | "unmute" | "kick";

export interface ModerationResult {
  action: ModerationAction;
  user_id: string;
  until: string | null;
  reason: string | null;
}

export interface ModerationLogEntry {
  action: string;
  actor_id: string;
  user_id: string;
  until: string | null;
  reason: string | null;
  occurred_at: string;
}

// --- hub events ---------------------------------------------------------------------------------------------------

interface Durable {
  conversation_id: string;
  /** Present on servers that track delivery; the SDK drops an event whose event_seq it has seen. */
  event_seq?: number;
}

export interface MessageEditedEvent extends Durable {
  seq: number;
  message_id: string;
  content: MessageContent | null;
  edited_at: string;
  editor_id: string;
}

export interface MessageDeletedEvent extends Durable {
  seq: number;
  message_id: string;
  deleted_by: string;
  deleted_at: string;
}

export interface ReactionChangedEvent extends Durable {
  seq: number;
  message_id: string;
  user_id: string;
  reaction: string;
  added: boolean;
}

export interface MemberAddedEvent extends Durable { user_id: string; role: Role; by: string }
export interface MemberRemovedEvent extends Durable { user_id: string; reason: string | null; by: string }
export interface MemberRoleChangedEvent extends Durable { user_id: string; role: Role; by: string }
export interface ModerationEvent extends Durable { user_id: string; by: string; until: string | null; reason: string | null }
export interface ConversationUpdatedEvent extends Durable { title: string | null; metadata: Record<string, string> | null }
export interface RoomErrorEvent { conversation_id: string; code: string; message: string }

export interface MemberPresenceEvent { conversation_id: string; user_id: string }
export interface TypingEvent { conversation_id: string; user_id: string; at: string }
export interface ReceiptEvent { conversation_id: string; user_id: string; seq: number; at: string }

export interface SessionExpiredEvent { code: string; message: string }

export interface HubError {
  code: string;
  message: string;
  errors?: Record<string, string[]> | null;
  retry_after_seconds?: number | null;
  retry_after_ms?: number | null;
}

/** What every hub method answers. */
export type HubResult<T = Record<string, unknown>> = ({ success: true } & T) | { success: false; message_id?: string | null; error: HubError };

export interface JoinResult {
  conversation_id: string;
  role: Role | null;
  last_seq: number;
  members: Member[];
}

// --- calls -----------------------------------------------------------------------------------------------------

/** An `RTCIceServer`: a STUN entry has no username or credential. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/**
 * ICE servers for `new RTCPeerConnection({iceServers: ice_servers})` (TURN REST credentials valid `ttl_seconds`);
 * `warning` is set when no TURN server is healthy (or none is configured): the list may then be STUN only, or empty.
 */
export interface IceServers {
  ice_servers: IceServer[];
  ttl_seconds: number;
  warning: string | null;
}

export interface RecordingConsent {
  user_id: string;
  consent: boolean;
  at: string;
  /** "requested" (asking is the requester's consent) or "hub". */
  how: string;
}

/**
 * A call recording as RequestRecording / ConsentRecording / StopRecording answer it. `status`: pending (consents
 * awaited), recording, paused (a joiner must consent), declined, recorded, deleted.
 */
export interface RecordingStatus {
  call_id: string;
  recording_id: string;
  status: "pending" | "recording" | "paused" | "declined" | "recorded" | "deleted" | (string & {});
  awaiting: string[];
  consents: RecordingConsent[];
}

/** A call as StartCall / AcceptCall / DeclineCall / LeaveCall / EndCall answer it. */
export interface CallAnswer {
  call_id: string;
  status: "ringing" | "active" | "ended";
  joined: string[];
  ringing: string[];
  /** Why it ended, when `status` is "ended" (e.g. "busy" when everyone it would ring is in another call). */
  end_reason: CallEndReason | null;
  /** The call's recording while it may record (a joiner learns of it before any media flows), else null. */
  recording: RecordingStatus | null;
}

export type SignalKind = "offer" | "answer" | "ice";

/** A `getStats` summary for `reportCallQuality`: at least one metric. */
export interface CallQualitySample {
  rtt_ms?: number;
  jitter_ms?: number;
  packet_loss_pct?: number;
  bitrate_kbps?: number;
}

/** A finished call in `rest.calls()`. */
export interface CallRecord {
  call_id: string;
  media: CallMedia;
  started_by: string;
  started_at: string;
  ended_at: string;
  reason: CallEndReason;
  duration_seconds: number;
  participants: string[];
  ended_by: string | null;
  quality: ParticipantCallQuality[];
}

/** `GET /v1/conversations/{id}/calls`: the active call (with its quality so far) and the finished ones, newest first. */
export interface CallList {
  active: {
    call_id: string;
    status: "ringing" | "active";
    media: CallMedia;
    started_by: string;
    started_at: string;
    joined: string[];
    ringing: string[];
    quality: ParticipantCallQuality[];
  } | null;
  items: CallRecord[];
}

// Call events: to every connection of the users concerned, whether or not they joined the conversation's room.

interface CallEventBase {
  call_id: string;
  conversation_id: string;
}

/** To every member rung (each of their connections). */
export interface CallRingingEvent extends CallEventBase { from_user_id: string; media: CallMedia }
/** `callAccepted` (to everyone in the call but the joiner) and `participantJoined` (to those already joined). */
export interface CallParticipantEvent extends CallEventBase { user_id: string }
/** To the answering user's other connections: stop ringing there. */
export type CallAnsweredElsewhereEvent = CallEventBase;
export interface ParticipantLeftEvent extends CallEventBase { user_id: string; reason: "left" | "disconnected" | (string & {}) }
/** To the members whose ring timed out. */
export type CallMissedEvent = CallEventBase;
export interface CallEndedEvent extends CallEventBase {
  reason: CallEndReason;
  ended_by: string | null;
  duration_seconds: number;
  participants: string[];
  quality: ParticipantCallQuality[];
}
/**
 * A change of a conversation's call as the conversation recorded it: durable, with `event_seq`, to the room's
 * connections, and replayed after a reconnect like messages (a call that started or ended while this client was away
 * arrives here). It carries the call's whole state after the change; the ringing and signaling events above are live.
 */
export interface CallUpdatedEvent extends CallEventBase {
  change: "started" | "joined" | "declined" | "busy" | "left" | "missed" | "ended";
  status: "ringing" | "active" | "ended";
  media: CallMedia;
  started_by: string;
  started_at: string;
  /** Who is in the call / still rung after the change (empty once ended). */
  joined: string[];
  ringing: string[];
  /** Whom the change is about: the joiner, the decliner, those who missed it; once ended, who took part. */
  user_ids: string[];
  /** `left`/`disconnected` for a leave; the end reason for the end. */
  reason: string | null;
  duration_seconds: number | null;
  /** Whose command changed it (`system` for timeouts). */
  by: string;
  at: string;
  event_seq: number;
}
/** An SDP offer/answer or an ICE candidate relayed from another participant (`payload` as they sent it). */
export interface SignalEvent {
  call_id: string;
  from_user_id: string;
  from_connection_id: string;
  kind: SignalKind;
  payload: unknown;
}

interface RecordingEventBase extends CallEventBase { recording_id: string }
export interface RecordingConsentRequestedEvent extends RecordingEventBase {
  requested_by: string;
  awaiting: string[];
  deadline: string;
  timeout_seconds: number;
}
export interface RecordingConsentedEvent extends RecordingEventBase { user_id: string; consent: boolean }
export interface RecordingStartedEvent extends RecordingEventBase { requested_by: string | null }
/** reason: "stopped" (StopRecording, `by`), "call_ended", or "consent_pending" (`awaiting` joined and must consent). */
export interface RecordingStoppedEvent extends RecordingEventBase {
  reason: "stopped" | "call_ended" | "consent_pending" | (string & {});
  by: string | null;
  awaiting: string[];
}
/** reason: "refused" (`user_ids` said no) or "timeout" (`user_ids` did not answer). */
export interface RecordingDeclinedEvent extends RecordingEventBase { reason: "refused" | "timeout" | (string & {}); user_ids: string[] }

/**
 * A room's joins, leaves and presence changes since the feed's last tick, in one event (the server batches them; the
 * client also hands each one out as `memberJoined`, `memberLeft` and `presenceChanged`). Per user the tick's last
 * change wins.
 */
export interface RoomActivityEvent {
  conversation_id: string;
  joined: string[];
  left: string[];
  presence: Presence[];
}

// --- media -----------------------------------------------------------------------------------------------------

/** `POST /v1/media/upload/chunk`: a resumable upload into a conversation; without `size`, the short last chunk ends it. */
export interface UploadStart {
  file_name: string;
  content_type: string;
  conversation_id: string;
  size?: number;
  sha256?: string;
  /** A call recording's bytes (`rec_…`): only its requester, once something was recorded, once. */
  recording_id?: string;
}

export interface UploadStarted {
  upload_id: string;
  /** Every chunk but the last is exactly this many bytes. */
  chunk_size: number;
  expires_at: string;
}

export interface ChunkReceived {
  upload_id: string;
  index: number;
  received_bytes: number;
}

/** A stored file's metadata (`content_type` as sniffed from its bytes). */
export interface MediaFile {
  id: string;
  conversation_id: string;
  owner_id: string;
  file_name: string;
  content_type: string;
  kind: string;
  size: number;
  sha256: string;
  width: number | null;
  height: number | null;
  duration_ms: number | null;
  state: string;
  created_at: string;
  thumbnail_url: string | null;
}

// --- search (GET /v1/search…) ---

/** A matched span: ranges are UTF-16 offsets into `fragment`, end exclusive (no HTML). */
export interface SearchHighlight {
  field: string;
  fragment: string;
  ranges: [number, number][];
}

export interface MessageSearchHit {
  message_id: string;
  conversation_id: string;
  seq: number;
  sender_id: string;
  created_at: string;
  highlights: SearchHighlight[];
}

export interface MessageSearchPage {
  items: MessageSearchHit[];
  next_cursor: string | null;
  total_estimate: number;
}

export interface MessageSearchOptions {
  conversation_id?: string;
  sender_id?: string;
  /** RFC 3339 bounds on created_at. */
  from?: string;
  to?: string;
  has?: "file" | "image" | "audio" | "video" | "link";
  intent?: string;
  sentiment?: "positive" | "negative" | "neutral";
  entity?: "phone" | "email" | "url" | "money";
  sort?: "relevance" | "recent";
  limit?: number;
  cursor?: string;
}

export interface ConversationSearchHit {
  conversation_id: string;
  type: ConversationType;
  title: string | null;
  highlights: SearchHighlight[];
}

export interface UserSearchHit {
  user_id: string;
  display_name: string | null;
  highlights: SearchHighlight[];
}

export interface FileSearchHit {
  file_id: string;
  conversation_id: string;
  message_id: string | null;
  seq: number | null;
  file_name: string;
  content_type: string;
  size: number;
  created_at: string;
  thumbnail_url: string | null;
  highlights: SearchHighlight[];
}

export interface SearchAll {
  messages: { items: MessageSearchHit[] };
  conversations: { items: ConversationSearchHit[] };
  users: { items: UserSearchHit[] };
  files: { items: FileSearchHit[] };
}

export interface SearchSuggestion {
  kind: "user" | "conversation" | "term";
  value: string;
  id: string | null;
}

export interface RecentSearch {
  q: string;
  searched_at: string;
}
