// Test kit: a real CAAS node as a child process (`caas.dll run`, SQLite in a temp dir, a JWT secret), tokens signed
// with that secret, and a TCP proxy whose sockets a test can drop. Waits are bounded and poll for a condition.
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const nodeDll = process.env.CAAS_SDK_NODE_DLL ?? join(repo, "src/Caas.Node/bin/Release/net10.0/caas.dll");

export async function freePort() {
  return new Promise((ok, fail) => {
    const server = net.createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** Polls `condition` until it is truthy (or throws after `timeoutMs`, generous: the machine may be busy). */
export async function waitFor(condition, what, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

export class CaasNode {
  constructor() {
    if (!existsSync(nodeDll)) throw new Error(`${nodeDll} is missing: dotnet build src/Caas.Node -c Release`);
    this.secret = randomBytes(32).toString("hex");
    this.dataDir = mkdtempSync(join(tmpdir(), "caas-sdk-test-"));
    this.process = null;
    this.port = 0;
    this.log = [];
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the node (again on the same port and data after a stop) and waits until /health/ready answers 200. A first
   * start whose port was taken before the node bound it (freePort() closes its probe first, and another process may
   * get the port in between) starts again on another port, at most three times.
   */
  async start() {
    const first = !this.port;
    for (let attempt = 1; ; attempt++) {
      this.port ||= await freePort();
      try {
        await this.startOnce();
        return;
      } catch (e) {
        const taken = /address already in use|Failed to bind/i.test(this.log.join(""));
        if (!first || !taken || attempt === 3) throw e;
        this.port = 0;
        this.log = [];
      }
    }
  }

  async startOnce() {
    const child = spawn("dotnet", [nodeDll, "run"], {
      env: {
        ...process.env,
        CAAS_DATA_DIR: this.dataDir,
        ASPNETCORE_URLS: this.url,
        CAAS_JWT_SECRET: this.secret,
        CAAS_LOG_LEVEL: "Error",
        CAAS_POSTGRES: "",
        CAAS_SEED_NODES: "",
        CAAS_INTENT_AUTOTRAIN: "0",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.process = child;
    // Never outlive the test process, however it ends.
    const reap = () => child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => process.off("exit", reap));
    const keep = (chunk) => {
      this.log.push(chunk.toString());
      if (this.log.length > 200) this.log.shift();
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    let exited = null;
    child.once("exit", (code) => (exited = code ?? "signal"));
    await waitFor(async () => {
      if (exited !== null) throw new Error(`the node exited (${exited}) while starting:\n${this.log.join("").slice(-3000)}`);
      try {
        const r = await fetch(`${this.url}/health/ready`);
        return r.ok;
      } catch {
        return false;
      }
    }, "the node to be ready", 180_000);
  }

  /** Kills the node at once (SIGKILL: no graceful shutdown) and waits for it to be gone. */
  async kill() {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await gone;
    this.process = null;
  }

  async dispose() {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** An HS256 token for a user of a tenant, as the node's dev-token issues (sub, tenant_id, exp). */
  token(user, { tenant = "acme", roles, lifetimeSeconds = 3600 } = {}) {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const payload = { sub: user, tenant_id: tenant, iat: now, nbf: now - 5, exp: now + lifetimeSeconds };
    if (roles) payload.roles = roles;
    const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(payload)}`;
    return `${head}.${createHmac("sha256", this.secret).update(head).digest("base64url")}`;
  }

  /**
   * REST as a user (for setup): throws on an error status, except 503 (a node just started, on busy cores, may not
   * answer its first asks within their timeout), which is retried within a bounded wait.
   */
  async rest(user, method, path, body, options) {
    let last = "";
    const answer = await waitFor(async () => {
      const r = await fetch(this.url + path, {
        method,
        headers: { authorization: `Bearer ${this.token(user, options)}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      if (r.status === 503) {
        last = text;
        return null;
      }
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
      return { value: text ? JSON.parse(text) : undefined };
    }, `${method} ${path} to answer other than 503 (last: ${last})`);
    return answer.value;
  }

  /** Lifts the tenant's per-user message rate and hourly cap so bursts are not throttled. */
  async liftLimits(tenant = "acme") {
    await this.rest("admin", "PUT", "/v1/admin/tenant/settings", { message_rate_per_minute: 100000, message_cap_per_hour: 1000000 },
      { tenant, roles: ["admin"] });
  }
}

/** A TCP proxy in front of the node: `drop()` destroys every proxied socket (a network cut), new ones still pass. */
export class DropProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    /** While true, new connections are cut at once (the network is down). */
    this.refusing = false;
    this.server = net.createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, "127.0.0.1");
      this.sockets.add(client);
      this.sockets.add(upstream);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async listen() {
    await new Promise((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  drop() {
    const n = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return n;
  }

  async close() {
    this.drop();
    await new Promise((r) => this.server.close(r));
  }
}
