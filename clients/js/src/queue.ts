import { CaasError } from "./errors.js";
import type { QueuedMessage, QueueStorage } from "./storage.js";
import type { Content, HubError } from "./types.js";

export type SendOutcome =
  | { status: "persisted"; message_id: string; conversation_id: string; seq: number; repeat: boolean }
  | { status: "failed"; message_id: string; conversation_id: string; error: HubError };

export interface SendQueueOptions {
  storage: QueueStorage;
  /** Tabs of one user share this channel (BroadcastChannel) to hear each other's outcomes and new items. */
  channelName: string;
  /** Sends one message over the hub; throws when the connection is not usable. */
  send: (item: QueuedMessage) => Promise<SendOutcome | { status: "retry"; error: HubError; retryAfterMs?: number }>;
  connected: () => boolean;
  onOutcome: (outcome: SendOutcome) => void;
  onError: (error: unknown) => void;
  leaseTtlMs: number;
  maxAttempts: number;
  retryDelayMs: (attempt: number) => number;
}

type Wire = { type: "queued" } | { type: "outcome"; outcome: SendOutcome };

/**
 * The offline send queue. Every message is stored before it is sent and removed once the server answered for it;
 * only the holder of the storage's lease sends (one tab of several), one message at a time in queue order, retrying
 * a transient failure with the same message_id (the server answers a repeat with the original).
 */
export class SendQueue {
  readonly owner = `q-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
  private readonly waiting = new Map<string, (o: SendOutcome) => void>();
  private readonly channel: BroadcastChannel | null;
  private leader = false;
  private pumping = false;
  private again = false;
  private closed = false;
  private leaseTimer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private counter = 0;
  /** Hub SendMessage invocations this client made (tests read it: a follower tab makes none). */
  invocations = 0;

  constructor(private readonly o: SendQueueOptions) {
    this.channel = typeof BroadcastChannel === "function" ? new BroadcastChannel(o.channelName) : null;
    if (this.channel) {
      this.channel.onmessage = (e: MessageEvent<Wire>) => {
        if (e.data?.type === "queued") this.kick();
        else if (e.data?.type === "outcome") this.settle(e.data.outcome, false);
      };
      (this.channel as unknown as { unref?: () => void }).unref?.();
    }
  }

  get isLeader() {
    return this.leader;
  }

  start() {
    void this.renewLease();
    this.leaseTimer = setInterval(() => void this.renewLease(), Math.max(250, Math.floor(this.o.leaseTtlMs / 3)));
    (this.leaseTimer as unknown as { unref?: () => void }).unref?.();
  }

  async close() {
    this.closed = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.leader) await this.o.storage.releaseLease(this.owner).catch(() => {});
    this.leader = false;
    this.channel?.close();
  }

  async enqueue(conversationId: string, content: Content, messageId: string): Promise<SendOutcome> {
    const item: QueuedMessage = {
      message_id: messageId,
      conversation_id: conversationId,
      content,
      order: Date.now() * 1000 + (this.counter++ % 1000),
      attempts: 0,
      queued_at: new Date().toISOString(),
    };
    const outcome = new Promise<SendOutcome>((resolve) => this.waiting.set(messageId, resolve));
    await this.o.storage.put(item);
    this.channel?.postMessage({ type: "queued" } satisfies Wire);
    this.kick();
    return outcome;
  }

  pending() {
    return this.o.storage.load();
  }

  /** Sends what is queued, if this client holds the lease and is connected. */
  kick() {
    if (this.closed || !this.leader || !this.o.connected()) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump()
      .catch(this.o.onError)
      .finally(() => {
        this.pumping = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async renewLease() {
    if (this.closed) return;
    try {
      const was = this.leader;
      this.leader = await this.o.storage.claimLease(this.owner, Date.now(), this.o.leaseTtlMs);
      // A new leader sends what others queued; a leader also looks again in case a broadcast was missed.
      if (this.leader) this.kick();
      else if (was) this.again = false;
    } catch (e) {
      this.o.onError(e);
    }
  }

  private async pump() {
    for (;;) {
      if (this.closed || !this.leader || !this.o.connected()) return;
      const [item] = await this.o.storage.load();
      if (!item) return;
      // The lease is renewed before every send: a tab whose timers were throttled (hidden) and whose lease another
      // tab took meanwhile learns it here, before sending, and the renewed lease cannot be taken while this send runs.
      this.leader = await this.o.storage.claimLease(this.owner, Date.now(), this.o.leaseTtlMs);
      if (!this.leader) return;
      this.invocations++;
      let answer: Awaited<ReturnType<SendQueueOptions["send"]>>;
      try {
        answer = await this.o.send(item);
      } catch (e) {
        // The connection dropped under the call: the outcome is unknown; the same message_id goes again later.
        answer = { status: "retry", error: { code: "disconnected", message: (e as Error).message } };
      }
      if (answer.status !== "retry") {
        await this.o.storage.remove(item.message_id);
        this.settle(answer, true);
        continue;
      }
      item.attempts++;
      if (item.attempts >= this.o.maxAttempts) {
        await this.o.storage.remove(item.message_id);
        this.settle({ status: "failed", message_id: item.message_id, conversation_id: item.conversation_id, error: answer.error }, true);
        continue;
      }
      await this.o.storage.put(item);
      if (!this.o.connected()) return; // resumed by kick() on reconnect
      const delay = answer.retryAfterMs ?? this.o.retryDelayMs(item.attempts);
      await new Promise<void>((resolve) => {
        this.retryTimer = setTimeout(resolve, delay);
      });
    }
  }

  private settle(outcome: SendOutcome, local: boolean) {
    if (local) this.channel?.postMessage({ type: "outcome", outcome } satisfies Wire);
    const resolve = this.waiting.get(outcome.message_id);
    this.waiting.delete(outcome.message_id);
    this.o.onOutcome(outcome);
    resolve?.(outcome);
  }
}

export function outcomeOfError(error: HubError, item: QueuedMessage): SendOutcome | { status: "retry"; error: HubError; retryAfterMs?: number } {
  const e = new CaasError(error.code, error.message);
  if (!e.transient) return { status: "failed", message_id: item.message_id, conversation_id: item.conversation_id, error };
  const after = error.retry_after_ms ?? (error.retry_after_seconds ? error.retry_after_seconds * 1000 : undefined);
  return { status: "retry", error, retryAfterMs: after ?? undefined };
}
