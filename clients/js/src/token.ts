/** The claims the SDK reads from a JWT (it never verifies one: the server does). */
export interface TokenClaims {
  sub?: string;
  tenant_id?: string;
  exp?: number;
}

export function decodeToken(token: string): TokenClaims {
  const part = token.split(".")[1];
  if (!part) return {};
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(part.length + ((4 - (part.length % 4)) % 4), "=");
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    return JSON.parse(json) as TokenClaims;
  } catch {
    return {};
  }
}
