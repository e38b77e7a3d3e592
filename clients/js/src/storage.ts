import type { Content } from "./types.js";

/** A message waiting in the offline send queue. */
export interface QueuedMessage {
  message_id: string;
  conversation_id: string;
  content: Content;
  /** Position in the queue: sends go out in this order. */
  order: number;
  attempts: number;
  queued_at: string;
}

/**
 * Where the offline send queue lives, and the lease that elects the one sender among the clients (tabs) sharing it.
 * `claimLease` must be atomic: take or renew the lease when it is free, expired or already the owner's.
 */
export interface QueueStorage {
  load(): Promise<QueuedMessage[]>;
  put(item: QueuedMessage): Promise<void>;
  remove(messageId: string): Promise<void>;
  claimLease(owner: string, now: number, ttlMs: number): Promise<boolean>;
  releaseLease(owner: string): Promise<void>;
}

/** In memory (Node, tests): one instance shared by several clients stands for tabs sharing one browser profile. */
export class MemoryQueueStorage implements QueueStorage {
  private readonly items = new Map<string, QueuedMessage>();
  private lease: { owner: string; until: number } | null = null;

  async load() {
    return [...this.items.values()].map((i) => ({ ...i })).sort((a, b) => a.order - b.order);
  }
  async put(item: QueuedMessage) {
    this.items.set(item.message_id, { ...item });
  }
  async remove(messageId: string) {
    this.items.delete(messageId);
  }
  async claimLease(owner: string, now: number, ttlMs: number) {
    if (this.lease && this.lease.owner !== owner && this.lease.until > now) return false;
    this.lease = { owner, until: now + ttlMs };
    return true;
  }
  async releaseLease(owner: string) {
    if (this.lease?.owner === owner) this.lease = null;
  }
}

/**
 * In IndexedDB (browsers): the queue survives a page reload; the lease is read and written in one readwrite
 * transaction, which IndexedDB runs one at a time across tabs, so only one tab sends.
 */
export class IndexedDbQueueStorage implements QueueStorage {
  private db: Promise<IDBDatabase> | null = null;

  constructor(private readonly name: string, private readonly factory: IDBFactory = globalThis.indexedDB) {
    if (!factory) throw new Error("IndexedDB is not available here; pass another QueueStorage.");
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const request = this.factory.open(this.name, 1);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains("queue")) db.createObjectStore("queue", { keyPath: "message_id" });
        if (!db.objectStoreNames.contains("lease")) db.createObjectStore("lease");
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return this.db;
  }

  private async tx<T>(stores: string[], mode: IDBTransactionMode, body: (t: IDBTransaction) => IDBRequest | void, pick?: (r: unknown) => T): Promise<T> {
    const db = await this.open();
    return new Promise<T>((resolve, reject) => {
      const t = db.transaction(stores, mode);
      const request = body(t);
      t.oncomplete = () => resolve(pick ? pick(request ? request.result : undefined) : (undefined as T));
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  }

  load() {
    return this.tx(["queue"], "readonly", (t) => t.objectStore("queue").getAll(), (r) => (r as QueuedMessage[]).sort((a, b) => a.order - b.order));
  }
  put(item: QueuedMessage) {
    return this.tx<void>(["queue"], "readwrite", (t) => void t.objectStore("queue").put(item));
  }
  remove(messageId: string) {
    return this.tx<void>(["queue"], "readwrite", (t) => void t.objectStore("queue").delete(messageId));
  }
  async claimLease(owner: string, now: number, ttlMs: number) {
    let won = false;
    await this.tx<void>(["lease"], "readwrite", (t) => {
      const store = t.objectStore("lease");
      const get = store.get("lease");
      get.onsuccess = () => {
        const lease = get.result as { owner: string; until: number } | undefined;
        if (lease && lease.owner !== owner && lease.until > now) return;
        store.put({ owner, until: now + ttlMs }, "lease");
        won = true;
      };
    });
    return won;
  }
  async releaseLease(owner: string) {
    await this.tx<void>(["lease"], "readwrite", (t) => {
      const store = t.objectStore("lease");
      const get = store.get("lease");
      get.onsuccess = () => {
        if ((get.result as { owner: string } | undefined)?.owner === owner) store.delete("lease");
      };
    });
  }
}

/** IndexedDB where it exists (browsers), else memory (Node). */
export function defaultStorage(scope: string): QueueStorage {
  return typeof globalThis.indexedDB !== "undefined" ? new IndexedDbQueueStorage(`caas-sdk:${scope}`) : new MemoryQueueStorage();
}
