// Wire shapes of the CAAS REST API v1 and the chat hub (snake_case, times RFC 3339 UTC), as the server sends them.

export type Role = "owner" | "admin" | "moderator" | "member";
export type ConversationType = "direct" | "group" | "channel";

/** A message's content: a text, or {type, text}. */
export interface Content {
  type: string;
  text: string | null;
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
  content: Content | null;
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
  content: Content | null;
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
  content: Content | null;
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
