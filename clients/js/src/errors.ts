/** An error the server answered: a REST problem+json or a hub error object, with its stable code. */
export class CaasError extends Error {
  readonly code: string;
  readonly status?: number;
  readonly errors?: Record<string, string[]> | null;
  readonly retryAfterMs?: number;

  constructor(code: string, message: string, options: { status?: number; errors?: Record<string, string[]> | null; retryAfterMs?: number } = {}) {
    super(message);
    this.name = "CaasError";
    this.code = code;
    this.status = options.status;
    this.errors = options.errors;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** Worth retrying with the same message_id: the outcome is unknown or the server asked to come back later. */
  get transient(): boolean {
    return TRANSIENT.has(this.code) || (this.status !== undefined && this.status >= 500);
  }
}

/** Codes after which the same request may succeed later (DESIGN.md's table). */
export const TRANSIENT = new Set(["persist_timeout", "unavailable", "overloaded", "rate_limited", "internal_error", "disconnected", "network_error"]);
