import { HttpTransportType, HubConnection, HubConnectionBuilder, LogLevel } from "@microsoft/signalr";
import { Emitter } from "./emitter.js";
import { CaasError } from "./errors.js";
import { outcomeOfError, SendQueue, type SendOutcome } from "./queue.js";
import { contentOf, RestClient, type ContentInput } from "./rest.js";
import { defaultStorage, type QueuedMessage, type QueueStorage } from "./storage.js";
import { decodeToken } from "./token.js";
import type {
  CallAnswer, CallAnsweredElsewhereEvent, CallEndedEvent, CallMedia, CallMissedEvent, CallParticipantEvent, CallQualitySample,
  CallRingingEvent, CallUpdatedEvent, ConversationUpdatedEvent, HubError, HubResult, IceServers, JoinResult, MemberAddedEvent, MemberPresenceEvent,
  MemberRemovedEvent, MemberRoleChangedEvent, Message, MessageDeletedEvent, MessageEditedEvent, ModerationEvent, ParticipantLeftEvent,
  Presence, ReactionChangedEvent, ReceiptEvent, RecordingConsentedEvent, RecordingConsentRequestedEvent, RecordingDeclinedEvent,
  RecordingStartedEvent, RecordingStatus, RecordingStoppedEvent, RoomActivityEvent, RoomErrorEvent, SessionExpiredEvent, SignalEvent,
  SignalKind, TypingEvent,
} from "./types.js";

export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting" | "expired" | "closed";

export interface CaasClientOptions {
  /** The node's base address, e.g. http://127.0.0.1:5080 (the hub is at /hubs/chat on it). */
  url: string;
  /** The access token (a JWT with sub and tenant_id). */
  token: string;
  /** Called for a new token before the current one expires (`refreshBeforeMs`) and after the server said sessionExpired. */
  refreshToken?: () => Promise<string>;
  refreshBeforeMs?: number;
  /** Where the offline send queue lives: IndexedDB in browsers, memory in Node by default. */
  storage?: QueueStorage;
  /** Reconnect backoff: the first delay and the cap (each attempt doubles it, with jitter). */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Transient send failures are retried (same message_id) this many times before the message is reported failed. */
  maxSendAttempts?: number;
  /** At most one Typing call per conversation per this many ms (the server's window is 2 s). */
  typingIntervalMs?: number;
  /** Send MarkDelivered by itself, cumulatively, at most once per this many ms per room (0: never). */
  deliveredIntervalMs?: number;
  /** Messages per history page while catching up. */
  catchUpPageSize?: number;
  logLevel?: LogLevel;
  /** Hub protocol versions this client speaks, offered in Hello at every connect (default [PROTOCOL_VERSION]). */
  protocolVersions?: number[];
}

/** The hub protocol version this SDK is written against. */
export const PROTOCOL_VERSION = 1;

/** What the server answered to Hello on the current connection. */
export interface ServerInfo {
  /** The version both speak (the highest the client offered that the server has). */
  protocol: number;
  server: string;
  /** e.g. "resume", "tracked_delivery", "room_activity", "calls", "recordings", "messagepack". */
  features: string[];
  limits: {
    max_message_bytes: number;
    max_resume_rooms: number;
    max_resume_events: number;
    delivery_timeout_ms: number;
    delivery_retries: number;
    typing_window_ms: number;
  };
}

export interface ResumedEvent {
  conversation_id: string;
  via: "resume" | "history";
  /** The last message seq the app had before, and the last it has now. */
  from_seq: number | null;
  to_seq: number | null;
}

export interface CaasEvents {
  /** A new message, each once, in seq order per conversation (live, or caught up after a reconnect). */
  message: Message;
  messageEdited: MessageEditedEvent;
  messageDeleted: MessageDeletedEvent;
  reactionChanged: ReactionChangedEvent;
  memberAdded: MemberAddedEvent;
  memberRemoved: MemberRemovedEvent;
  memberRoleChanged: MemberRoleChangedEvent;
  userMuted: ModerationEvent;
  userUnmuted: ModerationEvent;
  userBanned: ModerationEvent;
  userUnbanned: ModerationEvent;
  userKicked: ModerationEvent;
  conversationUpdated: ConversationUpdatedEvent;
  /** A call of a joined room changed (durable: replayed after a reconnect; see CallUpdatedEvent). */
  callUpdated: CallUpdatedEvent;
  roomError: RoomErrorEvent;
  /** A room's joins, leaves and presence changes of one server tick; each is also handed out on its own below. */
  roomActivity: RoomActivityEvent;
  memberJoined: MemberPresenceEvent;
  memberLeft: MemberPresenceEvent;
  typing: TypingEvent;
  readReceipt: ReceiptEvent;
  delivered: ReceiptEvent;
  presenceChanged: Presence;
  /** The server ended the session (token expired). With `refreshToken` the client reconnects by itself. */
  sessionExpired: SessionExpiredEvent;
  /** A queued message was persisted (or repeated: the server already had it) / failed for good. */
  messagePersisted: Extract<SendOutcome, { status: "persisted" }>;
  messageFailed: Extract<SendOutcome, { status: "failed" }>;
  messageQueued: QueuedMessage;
  unreadChanged: { conversation_id: string; unread_count: number };
  state: { state: ConnectionState; previous: ConnectionState; error?: string };
  /** A room was rejoined after a reconnect and what was missed was delivered. */
  resumed: ResumedEvent;
  tokenRefreshed: { expires_at: number | null };
  // Calls: to every connection of the users concerned, whether or not they joined the conversation's room.
  /** A member started a call and this user is rung. */
  callRinging: CallRingingEvent;
  /** Someone joined (to everyone else in the call, ringing or joined). */
  callAccepted: CallParticipantEvent;
  /** This user answered on another connection: stop ringing here. */
  callAnsweredElsewhere: CallAnsweredElsewhereEvent;
  callDeclined: CallParticipantEvent;
  /** Someone joined (to those already joined: time to connect to them). */
  participantJoined: CallParticipantEvent;
  /** A member was not rung: they are in another call. */
  participantBusy: CallParticipantEvent;
  participantLeft: ParticipantLeftEvent;
  /** This user's ring timed out. */
  callMissed: CallMissedEvent;
  callEnded: CallEndedEvent;
  /** An SDP offer/answer or ICE candidate from another participant. */
  signal: SignalEvent;
  recordingConsentRequested: RecordingConsentRequestedEvent;
  recordingConsented: RecordingConsentedEvent;
  recordingStarted: RecordingStartedEvent;
  recordingStopped: RecordingStoppedEvent;
  recordingDeclined: RecordingDeclinedEvent;
  /** An error inside the SDK or a handler: reported, never thrown at the app. */
  error: unknown;
}

interface Room {
  id: string;
  /** Seq of the last message handed to the app; null until the join answered. */
  lastSeq: number | null;
  lastEventSeq: number | null;
  /** Messages that came early (a gap before them), by seq. */
  early: Map<number, Message>;
  /** The catch-up in progress, if any: live messages wait in `early` meanwhile. */
  catchingUp: Promise<void> | null;
  /** Unread: others' messages after the read marker. */
  readSeq: number;
  unreadBase: number;
  unreadBaseUpTo: number;
  unreadSeqs: Set<number>;
  deliveredSent: number;
  deliveredTimer: ReturnType<typeof setTimeout> | null;
}

const DURABLE_EVENTS = [
  "messageEdited", "messageDeleted", "reactionChanged", "memberAdded", "memberRemoved", "memberRoleChanged", "userMuted",
  "userUnmuted", "userBanned", "userUnbanned", "userKicked", "conversationUpdated", "callUpdated",
] as const;
const LIVE_EVENTS = ["memberJoined", "memberLeft", "typing", "readReceipt", "delivered", "presenceChanged"] as const;
const CALL_EVENTS = [
  "callRinging", "callAccepted", "callAnsweredElsewhere", "callDeclined", "participantJoined", "participantBusy", "participantLeft",
  "callMissed", "callEnded", "signal", "recordingConsentRequested", "recordingConsented", "recordingStarted", "recordingStopped",
  "recordingDeclined",
] as const satisfies readonly (keyof CaasEvents)[];

/**
 * A CAAS chat client: one hub connection (reconnected with backoff, every joined room rejoined and caught up), the
 * REST API (`rest`), an offline send queue, typing throttle, token refresh and live unread counts.
 */
export class CaasClient {
  readonly rest: RestClient;
  readonly userId: string;
  readonly tenantId: string;
  private readonly events: Emitter<CaasEvents>;
  private readonly rooms = new Map<string, Room>();
  private readonly queue: SendQueue;
  private readonly typingSent = new Map<string, number>();
  private connection: HubConnection | null = null;
  private token: string;
  private current: ConnectionState = "disconnected";
  private closing = false;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private connecting: Promise<void> | null = null;
  private reconnecting = false;
  private wakeUp: (() => void) | null = null;
  /** Whether the server offers Resume/event_seq (null: not known yet). */
  resumeSupported: boolean | null = null;
  /**
   * The server's answer to Hello on the current connection: the negotiated protocol, its features and limits. Null
   * before the first connection, or from a server older than Hello (which speaks protocol 1).
   */
  serverInfo: ServerInfo | null = null;

  constructor(private readonly options: CaasClientOptions) {
    this.token = options.token;
    const claims = decodeToken(options.token);
    this.userId = claims.sub ?? "";
    this.tenantId = claims.tenant_id ?? "";
    this.events = new Emitter<CaasEvents>((e) => this.events.emit("error", e));
    this.rest = new RestClient({ baseUrl: options.url, token: () => this.token });
    const scope = `${this.tenantId}:${this.userId}`;
    this.queue = new SendQueue({
      storage: options.storage ?? defaultStorage(scope),
      channelName: `caas-sdk:${scope}`,
      send: (item) => this.sendNow(item),
      connected: () => this.current === "connected",
      onOutcome: (o) => (o.status === "persisted" ? this.events.emit("messagePersisted", o) : this.events.emit("messageFailed", o)),
      onError: (e) => this.events.emit("error", e),
      leaseTtlMs: 10_000,
      maxAttempts: options.maxSendAttempts ?? 100,
      retryDelayMs: (n) => Math.min(10_000, 250 * 2 ** Math.min(n, 6)) * (0.5 + Math.random() / 2),
    });
  }

  on<K extends keyof CaasEvents>(event: K, handler: (payload: CaasEvents[K]) => void) {
    return this.events.on(event, handler);
  }
  once<K extends keyof CaasEvents>(event: K, handler: (payload: CaasEvents[K]) => void) {
    return this.events.once(event, handler);
  }
  off<K extends keyof CaasEvents>(event: K, handler: (payload: CaasEvents[K]) => void) {
    this.events.off(event, handler);
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** Hub SendMessage calls made by this client (a tab that does not hold the send lease makes none). */
  get sendInvocations() {
    return this.queue.invocations;
  }

  get isSendLeader() {
    return this.queue.isLeader;
  }

  /**
   * Connects; resolves once connected (retrying with backoff while the node cannot be reached). Later drops are
   * reconnected by themselves until close(); a closed client is done (make a new one).
   */
  async connect(): Promise<void> {
    this.closing = false;
    this.queue.start();
    this.scheduleRefresh();
    this.setState("connecting");
    for (;;) {
      try {
        await this.open();
        return;
      } catch (e) {
        if (e instanceof CaasError && e.code === "unauthenticated" && !(await this.refresh())) {
          this.setState("expired", e.message);
          throw e;
        }
        if (e instanceof CaasError && e.code === "unsupported_protocol") {
          // No version in common: retrying cannot help; this client is done.
          await this.close();
          throw e;
        }
        if (this.closing) throw new CaasError("closed", "The client was closed.");
        await this.backoff();
        if (this.closing) throw new CaasError("closed", "The client was closed.");
      }
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.wakeUp?.(); // a connect() waiting out a backoff ends now (with "closed")
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    for (const room of this.rooms.values()) if (room.deliveredTimer) clearTimeout(room.deliveredTimer);
    await this.queue.close();
    const c = this.connection;
    this.connection = null;
    await c?.stop().catch(() => {});
    this.setState("closed");
  }

  // --- rooms --------------------------------------------------------------------------------------------------

  /**
   * Joins a conversation's live room; rejoined after every reconnect. With `afterSeq`, the messages after it are
   * delivered first (from history), then live ones; without it, only messages after the join.
   */
  async joinRoom(conversationId: string, options: { afterSeq?: number } = {}): Promise<JoinResult> {
    let room = this.rooms.get(conversationId);
    if (!room) {
      room = newRoom(conversationId);
      this.rooms.set(conversationId, room);
    }
    if (options.afterSeq !== undefined) room.lastSeq = options.afterSeq;
    try {
      return await this.joinLive(room, false);
    } catch (e) {
      this.rooms.delete(conversationId);
      throw e;
    }
  }

  async leaveRoom(conversationId: string): Promise<void> {
    const room = this.rooms.get(conversationId);
    this.rooms.delete(conversationId);
    if (room?.deliveredTimer) clearTimeout(room.deliveredTimer);
    if (this.current === "connected") await this.call("LeaveRoom", { conversation_id: conversationId }).catch(() => {});
  }

  /** The seq of the last message delivered to the app for a joined room (what a later resume starts after). */
  lastSeq(conversationId: string): number | null {
    return this.rooms.get(conversationId)?.lastSeq ?? null;
  }

  joinedRooms(): string[] {
    return [...this.rooms.keys()];
  }

  // --- messages -----------------------------------------------------------------------------------------------

  /**
   * Queues a message and sends it when connected (in order, one sender among tabs). Resolves with its outcome:
   * persisted (with its seq) or failed (a rejection, or transient failures past maxSendAttempts); never rejects.
   */
  async send(conversationId: string, content: ContentInput, options: { messageId?: string } = {}): Promise<SendOutcome> {
    const messageId = options.messageId ?? newMessageId();
    const outcome = this.queue.enqueue(conversationId, contentOf(content), messageId);
    this.events.emit("messageQueued", {
      message_id: messageId, conversation_id: conversationId, content: contentOf(content), order: 0, attempts: 0, queued_at: new Date().toISOString(),
    });
    return outcome;
  }

  /** What the send queue still holds (also what survived a reload, with IndexedDB). */
  outbox(): Promise<QueuedMessage[]> {
    return this.queue.pending();
  }

  editMessage(conversationId: string, seq: number, content: ContentInput) {
    return this.call<{ message: Message }>("EditMessage", { conversation_id: conversationId, seq, content: contentOf(content) }).then((r) => r.message);
  }
  deleteMessage(conversationId: string, seq: number) {
    return this.call<{ message: Message }>("DeleteMessage", { conversation_id: conversationId, seq }).then((r) => r.message);
  }
  react(conversationId: string, seq: number, reaction: string) {
    return this.call<{ message: Message }>("React", { conversation_id: conversationId, seq, reaction }).then((r) => r.message);
  }
  unreact(conversationId: string, seq: number, reaction: string) {
    return this.call<{ message: Message }>("Unreact", { conversation_id: conversationId, seq, reaction }).then((r) => r.message);
  }
  getPresence(userId: string) {
    return this.call<Presence>("GetPresence", { user_id: userId });
  }

  /** Tells the room the user is typing, at most once per typingIntervalMs per conversation; answers whether it was sent. */
  typing(conversationId: string): boolean {
    const now = Date.now();
    const last = this.typingSent.get(conversationId) ?? -Infinity;
    if (now - last < (this.options.typingIntervalMs ?? 2000) || this.current !== "connected") return false;
    this.typingSent.set(conversationId, now);
    void this.call("Typing", { conversation_id: conversationId }).catch(() => {});
    return true;
  }

  // --- calls -------------------------------------------------------------------------------------------------

  /** ICE servers for `RTCPeerConnection` (hub `GetIceServers`; the same list as `rest.iceServers()`). */
  getIceServers(): Promise<IceServers> {
    return this.call<IceServers>("GetIceServers").then(stripSuccess);
  }

  /** Starts a call in a conversation: every other member is rung (`callRinging`), a busy one skipped (`participantBusy`). */
  startCall(conversationId: string, media: CallMedia): Promise<CallAnswer> {
    return this.call<CallAnswer>("StartCall", { conversation_id: conversationId, media }).then(stripSuccess);
  }
  /** Joins a call (again after a reload or an ICE restart: allowed); its `recording`, if any, waits for this user's consent. */
  acceptCall(callId: string): Promise<CallAnswer> {
    return this.call<CallAnswer>("AcceptCall", { call_id: callId }).then(stripSuccess);
  }
  declineCall(callId: string): Promise<CallAnswer> {
    return this.call<CallAnswer>("DeclineCall", { call_id: callId }).then(stripSuccess);
  }
  /** Leaves a call; the last one out ends it. Closing the connection leaves too. */
  leaveCall(callId: string): Promise<CallAnswer> {
    return this.call<CallAnswer>("LeaveCall", { call_id: callId }).then(stripSuccess);
  }
  /** Ends a call for everyone: its starter's or a moderator+'s right (else `forbidden`). */
  endCall(callId: string): Promise<CallAnswer> {
    return this.call<CallAnswer>("EndCall", { call_id: callId }).then(stripSuccess);
  }
  /**
   * Relays an SDP offer/answer or an ICE candidate to another joined participant (their `signal` event); at most
   * 16 KiB of JSON. A target not in the call (or ringing, or oneself) is `not_found`; a caller not joined `forbidden`.
   */
  sendSignal(callId: string, toUserId: string, kind: SignalKind, payload: unknown): Promise<{ call_id: string }> {
    return this.call<{ call_id: string }>("SendSignal", { call_id: callId, to_user_id: toUserId, kind, payload }).then(stripSuccess);
  }
  /** A joined participant's `getStats` summary (at least one metric); aggregated per participant into the call's `quality`. */
  reportCallQuality(callId: string, sample: CallQualitySample): Promise<{ call_id: string }> {
    return this.call<{ call_id: string }>("ReportCallQuality", { ...sample, call_id: callId }).then(stripSuccess);
  }
  /** Asks every joined participant to consent to recording (asking is this user's consent): `recordingConsentRequested`. */
  requestRecording(callId: string): Promise<RecordingStatus> {
    return this.call<RecordingStatus>("RequestRecording", { call_id: callId }).then(stripSuccess);
  }
  /** This user's answer to a recording request; the last consent starts it (`recordingStarted`), a refusal ends it. */
  consentRecording(callId: string, recordingId: string, consent: boolean): Promise<RecordingStatus> {
    return this.call<RecordingStatus>("ConsentRecording", { call_id: callId, recording_id: recordingId, consent }).then(stripSuccess);
  }
  /** Ends the call's recording for good: who asked for it, or a moderator+. */
  stopRecording(callId: string): Promise<RecordingStatus> {
    return this.call<RecordingStatus>("StopRecording", { call_id: callId }).then(stripSuccess);
  }

  // --- receipts and unread ------------------------------------------------------------------------------------

  /** Marks a conversation read up to seq (default: the last delivered message); stored on the server. */
  async markRead(conversationId: string, seq?: number): Promise<void> {
    const upTo = seq ?? this.rooms.get(conversationId)?.lastSeq ?? 0;
    if (upTo < 1) return;
    if (this.current === "connected") await this.call("MarkRead", { conversation_id: conversationId, seq: upTo });
    else await this.rest.markRead(conversationId, upTo);
    this.applyRead(conversationId, upTo);
  }

  /** Live unread count (others' messages after the read marker) of a joined room, seeded by loadUnreadCounts. */
  unreadCount(conversationId: string): number {
    const room = this.rooms.get(conversationId);
    return room ? room.unreadBase + room.unreadSeqs.size : 0;
  }

  /** Seeds the unread counts from the conversation list (REST); later messages and receipts keep them live. */
  async loadUnreadCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    let cursor: string | undefined;
    do {
      const page = await this.rest.listConversations({ limit: 200, cursor });
      for (const c of page.items) {
        counts.set(c.id, c.unread_count ?? 0);
        const room = this.rooms.get(c.id);
        if (room) {
          room.unreadBase = c.unread_count ?? 0;
          room.unreadBaseUpTo = c.last_seq;
          for (const s of room.unreadSeqs) if (s <= c.last_seq) room.unreadSeqs.delete(s);
          this.emitUnread(room);
        }
      }
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return counts;
  }

  // --- connection ---------------------------------------------------------------------------------------------

  private async open(): Promise<void> {
    if (this.connecting) return this.connecting;
    this.connecting = (async () => {
      const connection = new HubConnectionBuilder()
        .withUrl(`${this.options.url.replace(/\/+$/, "")}/hubs/chat`, {
          accessTokenFactory: () => this.token,
          transport: HttpTransportType.WebSockets,
        })
        .configureLogging(this.options.logLevel ?? LogLevel.None)
        .build();
      this.wire(connection);
      try {
        await connection.start();
      } catch (e) {
        const message = (e as Error).message ?? String(e);
        if (/\b401\b|Unauthorized/i.test(message)) throw new CaasError("unauthenticated", message);
        throw new CaasError("network_error", message);
      }
      if (this.closing) {
        await connection.stop().catch(() => {});
        return;
      }
      await this.hello(connection);
      if (this.closing) {
        await connection.stop().catch(() => {});
        return;
      }
      this.connection = connection;
      connection.onclose((error) => this.onClosed(connection, error));
      this.attempt = 0;
      this.setState("connected");
      this.queue.kick();
    })();
    try {
      await this.connecting;
    } finally {
      this.connecting = null;
    }
    // Outside the shared start: a drop during the rejoin starts a new connection rather than waiting for this one.
    if (this.current === "connected" && this.rooms.size > 0) await this.rejoinAll();
  }

  /** Negotiates the protocol on a new connection; an unsupported one (or a failure) stops the connection and throws. */
  private async hello(connection: HubConnection) {
    let answer: HubResult<ServerInfo>;
    try {
      answer = await connection.invoke("Hello", { versions: this.options.protocolVersions ?? [PROTOCOL_VERSION], client: "caas-js" });
    } catch (e) {
      if (isMissingMethod(e)) {
        this.serverInfo = null; // a server from before Hello: protocol 1
        return;
      }
      await connection.stop().catch(() => {});
      throw new CaasError("network_error", (e as Error).message ?? String(e));
    }
    if (!answer.success) {
      await connection.stop().catch(() => {});
      throw new CaasError(answer.error.code, answer.error.message);
    }
    const { protocol, server, features, limits } = answer;
    this.serverInfo = { protocol, server, features, limits };
    this.resumeSupported = features.includes("resume");
  }

  private wire(connection: HubConnection) {
    const mine = (handler: (payload: never) => void) => (payload: never) => {
      if (this.connection === connection) handler(payload);
    };
    connection.on("newMessage", mine((m: Message) => this.onMessage(m, "live")));
    for (const name of DURABLE_EVENTS) connection.on(name, mine((e: { conversation_id: string; event_seq?: number; user_id?: string }) => this.onDurable(name, e)));
    for (const name of LIVE_EVENTS) connection.on(name, mine((e: ReceiptEvent) => this.onLive(name, e)));
    for (const name of CALL_EVENTS) connection.on(name, mine((e: never) => this.events.emit(name, e)));
    connection.on("roomActivity", mine((e: RoomActivityEvent) => this.onRoomActivity(e)));
    connection.on("roomError", mine((e: RoomErrorEvent) => {
      this.rooms.delete(e.conversation_id);
      this.events.emit("roomError", e);
    }));
    connection.on("sessionExpired", mine((e: SessionExpiredEvent) => this.onSessionExpired(e)));
    // The queue learns outcomes from each call's answer; the server's own copies are not needed.
    connection.on("messagePersisted", () => {});
    connection.on("messagePersistFailed", () => {});
  }

  private onClosed(connection: HubConnection, error?: Error) {
    if (this.connection !== connection) return;
    this.connection = null;
    if (this.closing || this.current === "expired") return;
    this.setState("reconnecting", error?.message);
    void this.reconnectLoop();
  }

  private async reconnectLoop() {
    if (this.reconnecting) return;
    this.reconnecting = true;
    try {
      await this.reconnectAttempts();
    } finally {
      this.reconnecting = false;
    }
  }

  private async reconnectAttempts() {
    while (!this.closing && this.current !== "connected" && this.current !== "expired") {
      await this.backoff();
      if (this.closing || (this.current as ConnectionState) === "expired") return;
      try {
        await this.open();
      } catch (e) {
        if (e instanceof CaasError && e.code === "unsupported_protocol") {
          this.events.emit("error", e);
          await this.close();
          return;
        }
        if (e instanceof CaasError && e.code === "unauthenticated") {
          if (!(await this.refresh())) {
            this.setState("expired", e.message);
            return;
          }
        }
      }
    }
  }

  private backoff(): Promise<void> {
    const { initialDelayMs = 250, maxDelayMs = 10_000 } = this.options.reconnect ?? {};
    const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(this.attempt++, 16)) * (0.5 + Math.random() / 2);
    return new Promise((resolve) => {
      this.wakeUp = resolve;
      this.reconnectTimer = setTimeout(resolve, delay);
    });
  }

  /** After a reconnect: every room back, with what was missed, through Resume where the server has it, else history. */
  private async rejoinAll() {
    const rooms = [...this.rooms.values()];
    const resumable = rooms.filter((r) => r.lastEventSeq !== null);
    const viaJoin = rooms.filter((r) => r.lastEventSeq === null);
    if (resumable.length && this.resumeSupported !== false) {
      try {
        const result = await this.invoke<{ rooms: (HubResult<JoinResult & { event_seq?: number; resumed?: boolean }>)[] }>("Resume", {
          rooms: resumable.map((r) => ({ conversation_id: r.id, event_seq: r.lastEventSeq })),
        });
        this.resumeSupported = true;
        if (!result.success) throw new CaasError(result.error.code, result.error.message);
        result.rooms.forEach((answer, i) => {
          const room = resumable[i];
          if (!answer.success) {
            if (hubError(answer.error).transient) void this.rejoin(room);
            else this.dropRoom(room, answer.error);
            return;
          }
          if (answer.resumed) {
            // What was missed follows the answer, each event with its own event_seq: the mark moves as they come (moved to
            // the answer's now, the replayed edits, reactions and call updates would be taken as seen and dropped).
            this.events.emit("resumed", { conversation_id: room.id, via: "resume", from_seq: room.lastSeq, to_seq: room.lastSeq });
          } else {
            // Too far behind to replay: the messages come from history, and later events from here.
            if (answer.event_seq != null) room.lastEventSeq = Math.max(room.lastEventSeq ?? 0, answer.event_seq);
            void this.catchUp(room);
          }
        });
      } catch (e) {
        if (isMissingMethod(e)) this.resumeSupported = false;
        viaJoin.push(...resumable);
      }
    } else viaJoin.push(...resumable);
    await Promise.all(viaJoin.map((room) => this.rejoin(room)));
  }

  /** Rejoins one room; a transient refusal (overloaded, unavailable, rate_limited) is tried again while connected. */
  private async rejoin(room: Room, attempt = 0): Promise<void> {
    const connection = this.connection;
    try {
      await this.joinLive(room, true);
    } catch (e) {
      this.events.emit("error", e);
      if (!(e instanceof CaasError && e.transient) || this.rooms.get(room.id) !== room) return;
      const delay = e.retryAfterMs ?? Math.min(5_000, 250 * 2 ** Math.min(attempt, 5));
      await new Promise((resolve) => setTimeout(resolve, delay));
      // A new connection rejoins every room itself.
      if (this.connection === connection && this.current === "connected") await this.rejoin(room, attempt + 1);
    }
  }

  private async joinLive(room: Room, rejoin: boolean): Promise<JoinResult> {
    const from = room.lastSeq;
    const answer = await this.invoke<JoinResult & { event_seq?: number }>("JoinRoom", { conversation_id: room.id });
    if (!answer.success) {
      const error = hubError(answer.error);
      if (rejoin && !error.transient) this.dropRoom(room, answer.error);
      throw error;
    }
    if (answer.event_seq != null) {
      room.lastEventSeq = Math.max(room.lastEventSeq ?? 0, answer.event_seq);
      if (this.resumeSupported === null) this.resumeSupported = true;
    }
    if (room.lastSeq === null) room.lastSeq = answer.last_seq;
    if (room.unreadBaseUpTo === 0) room.unreadBaseUpTo = answer.last_seq;
    if (room.lastSeq < answer.last_seq || room.early.size > 0) await this.catchUp(room);
    if (rejoin) this.events.emit("resumed", { conversation_id: room.id, via: "history", from_seq: from, to_seq: room.lastSeq });
    return answer;
  }

  private dropRoom(room: Room, error: HubError) {
    this.rooms.delete(room.id);
    this.events.emit("roomError", { conversation_id: room.id, code: error.code, message: error.message });
  }

  // --- delivery -----------------------------------------------------------------------------------------------

  private onMessage(message: Message, _via: "live" | "history") {
    const room = this.rooms.get(message.conversation_id);
    if (!room) return;
    if (message.event_seq != null) room.lastEventSeq = Math.max(room.lastEventSeq ?? 0, message.event_seq);
    if (room.lastSeq !== null && message.seq <= room.lastSeq) return; // seen
    if (room.lastSeq === null || room.catchingUp || message.seq !== room.lastSeq + 1) {
      room.early.set(message.seq, message);
      if (room.lastSeq !== null && !room.catchingUp) void this.catchUp(room);
      return;
    }
    this.deliver(room, message);
    this.drainEarly(room);
  }

  private deliver(room: Room, message: Message) {
    room.lastSeq = message.seq;
    if (message.sender_id !== this.userId && message.seq > room.readSeq && message.seq > room.unreadBaseUpTo) {
      room.unreadSeqs.add(message.seq);
      this.emitUnread(room);
    }
    this.events.emit("message", message);
    this.scheduleDelivered(room);
  }

  private drainEarly(room: Room) {
    for (;;) {
      if (room.lastSeq === null) return;
      for (const seq of room.early.keys()) if (seq <= room.lastSeq) room.early.delete(seq);
      const next = room.early.get(room.lastSeq + 1);
      if (!next) return;
      room.early.delete(next.seq);
      this.deliver(room, next);
    }
  }

  /** Fills the gap after room.lastSeq from the history route (oldest first), then what came early, in order. */
  private catchUp(room: Room): Promise<void> {
    room.catchingUp ??= this.catchUpPasses(room).finally(() => {
      room.catchingUp = null;
    });
    return room.catchingUp;
  }

  private async catchUpPasses(room: Room): Promise<void> {
    try {
      for (;;) {
        const before = room.lastSeq;
        const earlyBefore = room.early.size ? Math.min(...room.early.keys()) : null;
        let cursor: string | undefined;
        do {
          if (this.rooms.get(room.id) !== room) return;
          const limit = this.options.catchUpPageSize ?? 200;
          const page = await this.rest.listMessages(room.id, cursor ? { cursor, limit } : { after_seq: room.lastSeq ?? 0, limit });
          for (const m of page.items) {
            if (room.lastSeq !== null && m.seq <= room.lastSeq) continue;
            this.deliver(room, m);
          }
          cursor = page.next_cursor ?? undefined;
        } while (cursor);
        this.drainEarly(room);
        if (room.early.size === 0) return;
        // An early message was already here when history was read, yet history has nothing before it: the server has
        // no message in that gap, so go on from the early one rather than wait for what does not exist.
        if (room.lastSeq === before && earlyBefore !== null && Math.min(...room.early.keys()) === earlyBefore) {
          this.deliver(room, room.early.get(earlyBefore)!);
          room.early.delete(earlyBefore);
          this.drainEarly(room);
          if (room.early.size === 0) return;
        }
      }
    } catch (e) {
      // The connection or the node is down (the next rejoin catches up again), or the history read was refused
      // (rate_limited, overloaded): try again shortly while connected, so what was missed never waits for a next message.
      this.events.emit("error", e);
      const retry = setTimeout(() => {
        if (this.rooms.get(room.id) === room && this.current === "connected") void this.catchUp(room);
      }, e instanceof CaasError && e.retryAfterMs ? e.retryAfterMs : 1000);
      (retry as unknown as { unref?: () => void }).unref?.();
    }
  }

  private onDurable(name: (typeof DURABLE_EVENTS)[number], e: { conversation_id: string; event_seq?: number; user_id?: string }) {
    const room = this.rooms.get(e.conversation_id);
    if (room && e.event_seq != null) {
      if (room.lastEventSeq !== null && e.event_seq <= room.lastEventSeq) return; // seen
      room.lastEventSeq = e.event_seq;
    }
    if ((name === "memberRemoved" || name === "userKicked" || name === "userBanned") && e.user_id === this.userId && room) {
      this.rooms.delete(room.id);
      if (room.deliveredTimer) clearTimeout(room.deliveredTimer);
    }
    this.events.emit(name, e as never);
  }

  private onLive(name: (typeof LIVE_EVENTS)[number], e: ReceiptEvent) {
    // The same user read on another device: this one's count follows.
    if (name === "readReceipt" && e.user_id === this.userId) this.applyRead(e.conversation_id, e.seq);
    this.events.emit(name, e as never);
  }

  /** The batch as it came, then each change on its own (what a server that does not batch sends). */
  private onRoomActivity(e: RoomActivityEvent) {
    this.events.emit("roomActivity", e);
    for (const user of e.joined ?? []) this.events.emit("memberJoined", { conversation_id: e.conversation_id, user_id: user });
    for (const user of e.left ?? []) this.events.emit("memberLeft", { conversation_id: e.conversation_id, user_id: user });
    for (const p of e.presence ?? []) this.events.emit("presenceChanged", p);
  }

  private applyRead(conversationId: string, seq: number) {
    const room = this.rooms.get(conversationId);
    if (!room || seq <= room.readSeq) return;
    room.readSeq = seq;
    if (seq >= room.unreadBaseUpTo) room.unreadBase = 0;
    for (const s of room.unreadSeqs) if (s <= seq) room.unreadSeqs.delete(s);
    this.emitUnread(room);
  }

  private emitUnread(room: Room) {
    this.events.emit("unreadChanged", { conversation_id: room.id, unread_count: room.unreadBase + room.unreadSeqs.size });
  }

  private scheduleDelivered(room: Room) {
    const every = this.options.deliveredIntervalMs ?? 1000;
    if (every <= 0 || room.deliveredTimer) return;
    room.deliveredTimer = setTimeout(() => {
      room.deliveredTimer = null;
      const seq = room.lastSeq ?? 0;
      if (seq <= room.deliveredSent || this.current !== "connected" || !this.rooms.has(room.id)) return;
      room.deliveredSent = seq;
      const args: Record<string, unknown> = { conversation_id: room.id, seq };
      if (room.lastEventSeq !== null) args.event_seq = room.lastEventSeq;
      void this.invoke("MarkDelivered", args).catch(() => {});
    }, every);
  }

  // --- sending ------------------------------------------------------------------------------------------------

  private async sendNow(item: QueuedMessage) {
    const answer = await this.invoke<{ message_id: string; conversation_id: string; seq: number; repeat?: boolean }>("SendMessage", {
      conversation_id: item.conversation_id, content: item.content, message_id: item.message_id,
    });
    if (answer.success) {
      return { status: "persisted" as const, message_id: answer.message_id, conversation_id: answer.conversation_id, seq: answer.seq, repeat: !!answer.repeat };
    }
    return outcomeOfError(answer.error, item);
  }

  // --- tokens -------------------------------------------------------------------------------------------------

  private scheduleRefresh() {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    const exp = decodeToken(this.token).exp;
    if (!this.options.refreshToken || !exp) return;
    const due = exp * 1000 - (this.options.refreshBeforeMs ?? 60_000) - Date.now();
    this.refreshTimer = setTimeout(() => void this.refreshAndReconnect(), Math.max(0, Math.min(due, 2 ** 31 - 1)));
  }

  private async refresh(): Promise<boolean> {
    if (!this.options.refreshToken) return false;
    try {
      this.token = await this.options.refreshToken();
      this.events.emit("tokenRefreshed", { expires_at: decodeToken(this.token).exp ?? null });
      this.scheduleRefresh();
      return true;
    } catch (e) {
      this.events.emit("error", e);
      return false;
    }
  }

  /** A new token, then a new connection on it (the server ends a connection when its token expires). */
  private async refreshAndReconnect() {
    if (this.closing) return;
    if (!(await this.refresh())) {
      this.refreshTimer = setTimeout(() => void this.refreshAndReconnect(), 5_000);
      return;
    }
    const old = this.connection;
    if (old) await old.stop().catch(() => {}); // onClosed reconnects with the new token and resumes
  }

  private async onSessionExpired(e: SessionExpiredEvent) {
    this.events.emit("sessionExpired", e);
    if (!(await this.refresh())) {
      this.setState("expired", e.message);
      const c = this.connection;
      this.connection = null;
      await c?.stop().catch(() => {});
    }
  }

  // --- plumbing -----------------------------------------------------------------------------------------------

  private async invoke<T>(method: string, ...args: unknown[]): Promise<HubResult<T>> {
    const c = this.connection;
    if (!c || this.current !== "connected") throw new CaasError("disconnected", "Not connected.");
    return c.invoke<HubResult<T>>(method, ...args);
  }

  /** Invokes a hub method (with one argument object, or none); a failure answer throws a CaasError with its code. */
  async call<T = Record<string, unknown>>(method: string, ...args: unknown[]): Promise<T> {
    const answer = await this.invoke<T>(method, ...args);
    if (!answer.success) throw hubError(answer.error);
    return answer as T;
  }

  private setState(state: ConnectionState, error?: string) {
    if (state === this.current) return;
    const previous = this.current;
    this.current = state;
    this.events.emit("state", { state, previous, error });
  }
}

function newRoom(id: string): Room {
  return {
    id, lastSeq: null, lastEventSeq: null, early: new Map(), catchingUp: null,
    readSeq: 0, unreadBase: 0, unreadBaseUpTo: 0, unreadSeqs: new Set(), deliveredSent: 0, deliveredTimer: null,
  };
}

function hubError(error: HubError) {
  return new CaasError(error.code, error.message, {
    errors: error.errors ?? null,
    retryAfterMs: error.retry_after_ms ?? (error.retry_after_seconds ? error.retry_after_seconds * 1000 : undefined),
  });
}

/** A hub answer without its `success` flag: the typed shape the call methods promise. */
function stripSuccess<T>(result: T): T {
  const { success: _, ...rest } = result as T & { success?: unknown };
  return rest as T;
}

function isMissingMethod(e: unknown) {
  return /method does not exist|unknown hub method/i.test((e as Error)?.message ?? "");
}

export function newMessageId(): string {
  const random = typeof crypto !== "undefined" && "randomUUID" in crypto ? crypto.randomUUID().replace(/-/g, "") : Math.random().toString(36).slice(2);
  return `m-${Date.now().toString(36)}-${random.slice(0, 16)}`;
}
