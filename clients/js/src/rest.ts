import { CaasError } from "./errors.js";
import type {
  CallList, ChunkReceived, Content, Conversation, ConversationSearchHit, ConversationType, IceServers, MediaFile, Message,
  MessageSearchOptions, MessageSearchPage, ModerationAction, ModerationLogEntry, ModerationResult, Page, Presence, Profile, RecentSearch,
  Role, SearchAll, SearchSuggestion, UploadStart, UploadStarted, UserSearchHit,
} from "./types.js";

export interface RestOptions {
  /** The node's base address, e.g. http://127.0.0.1:5080 */
  baseUrl: string;
  /** The current access token (called for every request, so a refreshed token is used at once). */
  token: () => string | Promise<string>;
  fetch?: typeof fetch;
}

export type ContentInput = string | Content;

/** Bytes for an upload chunk: what `fetch` takes as a body. */
export type Bytes = Blob | ArrayBuffer | Uint8Array;

export interface ChunkedUploadOptions extends Omit<UploadStart, "size"> {
  /**
   * Declare the size up front (default true). A recording's bytes may be sent without it, as a recorder would: the
   * short last chunk ends the file.
   */
  declareSize?: boolean;
  /** Attempts per request (start, each chunk, completion) for what may pass later (409, 429, 5xx, a network error). */
  attempts?: number;
  /** Called after each chunk with the bytes sent so far and the total. */
  onProgress?: (sent: number, total: number) => void;
}

/** The REST API v1 with typed methods; an error answer throws a CaasError with the problem's `code`. */
export class RestClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: RestOptions) {
    this.base = options.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    return this.send<T>(method, path, body === undefined ? undefined : { bytes: JSON.stringify(body), type: "application/json" }, signal);
  }

  /** A request with a raw body (bytes and their content type); the answer as `request`'s. */
  async send<T>(method: string, path: string, body?: { bytes: Bytes | string; type: string }, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${await this.options.token()}` };
    if (body !== undefined) headers["content-type"] = body.type;
    let response: Response;
    try {
      response = await this.fetchImpl(this.base + path, { method, headers, body: body?.bytes as BodyInit | undefined, signal });
    } catch (e) {
      throw new CaasError("network_error", `The request failed: ${(e as Error).message}`);
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!response.ok) {
      const retry = Number(response.headers.get("retry-after"));
      throw new CaasError(String(json.code ?? `http_${response.status}`), String(json.detail ?? json.title ?? response.statusText), {
        status: response.status,
        errors: (json.errors as Record<string, string[]>) ?? null,
        retryAfterMs: Number.isFinite(retry) && retry > 0 ? retry * 1000 : undefined,
      });
    }
    return json as T;
  }

  // --- conversations ---
  createConversation(body: { type: ConversationType; title?: string; members?: string[]; metadata?: Record<string, string> }) {
    return this.request<Conversation>("POST", "/v1/conversations", body);
  }
  listConversations(options: { limit?: number; cursor?: string } = {}) {
    return this.request<Page<Conversation>>("GET", `/v1/conversations${query(options)}`);
  }
  getConversation(id: string) {
    return this.request<Conversation>("GET", `/v1/conversations/${enc(id)}`);
  }
  updateConversation(id: string, body: { title?: string; metadata?: Record<string, string> }) {
    return this.request<Conversation>("PUT", `/v1/conversations/${enc(id)}`, body);
  }
  deleteConversation(id: string) {
    return this.request<void>("DELETE", `/v1/conversations/${enc(id)}`);
  }
  addMember(id: string, userId: string, role?: Role) {
    return this.request<Conversation>("POST", `/v1/conversations/${enc(id)}/members`, { user_id: userId, role });
  }
  removeMember(id: string, userId: string) {
    return this.request<void>("DELETE", `/v1/conversations/${enc(id)}/members/${enc(userId)}`);
  }
  changeRole(id: string, userId: string, role: Role) {
    return this.request<Conversation>("PUT", `/v1/conversations/${enc(id)}/members/${enc(userId)}/role`, { role });
  }
  markRead(id: string, seq: number) {
    return this.request<{ conversation_id: string; seq: number }>("PUT", `/v1/conversations/${enc(id)}/read`, { seq });
  }
  moderate(id: string, action: ModerationAction, body: { user_id: string; duration_seconds?: number; reason?: string }) {
    return this.request<ModerationResult>("POST", `/v1/conversations/${enc(id)}/moderation/${action}`, body);
  }
  moderationLog(id: string, options: { limit?: number; cursor?: string } = {}) {
    return this.request<Page<ModerationLogEntry>>("GET", `/v1/conversations/${enc(id)}/moderation/log${query(options)}`);
  }

  // --- calls ---
  /** A conversation's calls (members): the active one and up to `limit` (1–100, default 50) finished ones, newest first. */
  calls(conversationId: string, limit?: number) {
    return this.request<CallList>("GET", `/v1/conversations/${enc(conversationId)}/calls${query({ limit })}`);
  }
  /** ICE servers for `RTCPeerConnection` (TURN REST credentials); the same list as the hub's `getIceServers()`. */
  iceServers() {
    return this.request<IceServers>("GET", "/v1/webrtc/ice-servers");
  }

  // --- media: the resumable (chunked) upload ---
  /** Starts a resumable upload into a conversation (with `recording_id`: a call recording's bytes, its requester's only). */
  startUpload(body: UploadStart) {
    return this.request<UploadStarted>("POST", "/v1/media/upload/chunk", body);
  }
  /** One chunk (every chunk but the last exactly `chunk_size` bytes; any order; the same bytes again are fine). */
  uploadChunk(uploadId: string, index: number, bytes: Bytes) {
    return this.send<ChunkReceived>("POST", `/v1/media/upload/chunk/${enc(uploadId)}?index=${index}`, { bytes, type: "application/octet-stream" });
  }
  /** Assembles the file (checks size and SHA-256 when declared); again: the same metadata. */
  completeUpload(uploadId: string) {
    return this.request<MediaFile>("POST", `/v1/media/upload/complete/${enc(uploadId)}`);
  }
  /**
   * Uploads a Blob through the resumable upload: start, the chunks in order, completion; each request tried again
   * (with a growing delay) while its failure may pass (`conflict` of a chunk being stored, 429, 5xx, network errors).
   */
  async uploadChunked(data: Blob, options: ChunkedUploadOptions): Promise<MediaFile> {
    const { declareSize = true, attempts = 5, onProgress, ...start } = options;
    const retrying = <T>(f: () => Promise<T>) => retry(f, attempts);
    const started = await retrying(() => this.startUpload({ ...start, ...(declareSize ? { size: data.size } : {}) }));
    const size = started.chunk_size;
    for (let index = 0; index * size < data.size; index++) {
      const part = data.slice(index * size, (index + 1) * size);
      await retrying(() => this.uploadChunk(started.upload_id, index, part));
      onProgress?.(Math.min(data.size, (index + 1) * size), data.size);
    }
    return retrying(() => this.completeUpload(started.upload_id));
  }

  // --- messages ---
  postMessage(conversationId: string, content: ContentInput, messageId?: string) {
    return this.request<Message>("POST", "/v1/messages", { conversation_id: conversationId, content: contentOf(content), message_id: messageId });
  }
  /** Newest first; with `after_seq`, oldest first after it (catch-up). */
  listMessages(conversationId: string, options: { limit?: number; cursor?: string; after_seq?: number } = {}) {
    return this.request<Page<Message>>("GET", `/v1/messages/conversations/${enc(conversationId)}${query(options)}`);
  }
  getMessage(messageId: string) {
    return this.request<Message>("GET", `/v1/messages/${enc(messageId)}`);
  }
  editMessage(messageId: string, text: string) {
    return this.request<Message>("PUT", `/v1/messages/${enc(messageId)}`, { content: { type: "text", text } });
  }
  deleteMessage(messageId: string) {
    return this.request<Message>("DELETE", `/v1/messages/${enc(messageId)}`);
  }
  addReaction(messageId: string, reaction: string) {
    return this.request<Message>("POST", `/v1/messages/${enc(messageId)}/reactions`, { reaction });
  }
  removeReaction(messageId: string, reaction: string) {
    return this.request<Message>("DELETE", `/v1/messages/${enc(messageId)}/reactions/${enc(reaction)}`);
  }

  // --- users ---
  getPresence(userId: string) {
    return this.request<Presence>("GET", `/v1/users/${enc(userId)}/presence`);
  }
  me() {
    return this.request<Profile>("GET", "/v1/users/me");
  }
  updateMe(body: { display_name?: string; time_zone?: string; locale?: string }) {
    return this.request<Profile>("PUT", "/v1/users/me", body);
  }

  // --- search (the caller's tenant and conversations; query syntax: words, "phrases", -not, OR, from:, in:, after:, before:) ---
  /** Messages, conversations, people and files at once, the top `limit` (5) of each; remembered in recent searches. */
  search(q: string, options: { limit?: number } = {}) {
    return this.request<SearchAll>("GET", `/v1/search${query({ q, ...options })}`);
  }
  /** Messages with highlights and filters, best first (or `sort: "recent"`); page on with `next_cursor`. */
  searchMessages(q: string, options: MessageSearchOptions = {}) {
    return this.request<MessageSearchPage>("GET", `/v1/search/messages${query({ q, ...options })}`);
  }
  searchConversations(q: string, options: { limit?: number } = {}) {
    return this.request<{ items: ConversationSearchHit[] }>("GET", `/v1/search/conversations${query({ q, ...options })}`);
  }
  searchUsers(q: string, options: { limit?: number } = {}) {
    return this.request<{ items: UserSearchHit[] }>("GET", `/v1/search/users${query({ q, ...options })}`);
  }
  /** Completions as the user types (people, conversation titles, terms). */
  searchSuggestions(q: string, options: { limit?: number } = {}) {
    return this.request<{ items: SearchSuggestion[] }>("GET", `/v1/search/suggestions${query({ q, ...options })}`);
  }
  recentSearches() {
    return this.request<{ items: RecentSearch[] }>("GET", "/v1/search/recent");
  }
  clearRecentSearches() {
    return this.request<{ cleared: number }>("DELETE", "/v1/search/recent");
  }
}

export function contentOf(content: ContentInput): Content {
  return typeof content === "string" ? { type: "text", text: content } : content;
}

const enc = encodeURIComponent;

async function retry<T>(f: () => Promise<T>, attempts: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await f();
    } catch (e) {
      const again = e instanceof CaasError && (e.transient || e.status === 409);
      if (attempt >= attempts || !again) throw e;
      await new Promise((r) => setTimeout(r, (e as CaasError).retryAfterMs ?? 500 * attempt));
    }
  }
}

function query(options: Record<string, string | number | undefined>): string {
  const parts = Object.entries(options)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${enc(k)}=${enc(String(v))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}
