// The SDK's browser bundle in headless Chromium against a real node: two tabs of one user share the IndexedDB send
// queue (one sends, the other's messages go out through it), messages queued offline survive a page reload, and a page
// whose node is killed and restarted mid-burst reconnects and resumes with every message once, in order.
// The page is a real document of the node (/health/live: Chromium's local-network checks block a loopback socket from a
// page they cannot place), the bundle is served at the node's origin through Playwright's routing (no CORS needed),
// and the hub and REST calls go to the real node.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CaasClient } from "../dist/esm/index.js";
import { CaasNode, waitFor } from "./node.mjs";

const chromiumPath = process.env.CAAS_CHROMIUM ?? "/usr/bin/chromium";
const bundle = join(dirname(fileURLToPath(import.meta.url)), "../dist/browser/caas-client.js");
let node;
let context;
let profile;

before(async () => {
  if (!existsSync(chromiumPath)) return;
  node = new CaasNode();
  await node.start();
  await node.liftLimits();
  profile = mkdtempSync(join(tmpdir(), "caas-sdk-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  context.setDefaultTimeout(120_000);
  await context.route(`${node.url}/sdk/caas-client.js`, (route) => route.fulfill({ contentType: "text/javascript", body: readFileSync(bundle) }));
});

after(async () => {
  await context?.close().catch(() => {});
  if (profile) rmSync(profile, { recursive: true, force: true });
  await node?.dispose();
});

/** A tab with a client for `user` on window.client (connected unless told otherwise). */
async function tab(user, { connect = true, page } = {}) {
  page ??= await context.newPage();
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${node.url}/health/live`);
  await page.evaluate(async ({ url, token, connect }) => {
    const { CaasClient } = await import("/sdk/caas-client.js");
    window.client = new CaasClient({ url, token });
    window.persisted = [];
    window.client.on("messagePersisted", (o) => window.persisted.push(o));
    if (connect) await window.client.connect();
  }, { url: node.url, token: node.token(user), connect });
  return page;
}

const read = (page, expression) => page.evaluate(expression);
const skip = !existsSync(chromiumPath) && `no Chromium at ${chromiumPath} (scripts/deps/browser.sh installs it)`;

test("two tabs share the IndexedDB queue: one sends for both, nothing twice", { skip, timeout: 300_000 }, async () => {
  const room = await node.rest("tina", "POST", "/v1/conversations", { type: "group", title: "Browser tabs" });
  const a = await tab("tina");
  const b = await tab("tina");
  await waitFor(async () => (await read(a, "window.client.isSendLeader")) !== (await read(b, "window.client.isSendLeader")), "one leader tab");
  const [leader, follower] = (await read(a, "window.client.isSendLeader")) ? [a, b] : [b, a];
  const databases = await leader.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  assert.ok(databases.includes("caas-sdk:acme:tina"), `the queue is in IndexedDB (${databases})`);

  const outcomes = await follower.evaluate((id) => Promise.all([1, 2, 3].map((i) => window.client.send(id, `from the follower ${i}`))), room.id);
  assert.deepEqual(outcomes.map((o) => o.status), ["persisted", "persisted", "persisted"]);
  assert.deepEqual(outcomes.map((o) => o.seq), [1, 2, 3]);
  assert.equal(await read(follower, "window.client.sendInvocations"), 0, "the follower tab made no SendMessage call");
  assert.equal(await read(leader, "window.client.sendInvocations"), 3);
  const history = await node.rest("tina", "GET", `/v1/messages/conversations/${room.id}?after_seq=0`);
  assert.deepEqual(history.items.map((m) => m.content.text), ["from the follower 1", "from the follower 2", "from the follower 3"]);
  await read(a, "window.client.close()");
  await read(b, "window.client.close()");
  await a.close();
  await b.close();
});

test("messages queued offline survive a page reload and are sent once the page connects", { skip, timeout: 300_000 }, async () => {
  const room = await node.rest("ursula", "POST", "/v1/conversations", { type: "group", title: "Browser reload" });
  const page = await tab("ursula", { connect: false });
  await page.evaluate((id) => {
    for (const i of [1, 2]) void window.client.send(id, `offline ${i}`);
  }, room.id);
  await waitFor(async () => (await page.evaluate(() => window.client.outbox())).length === 2, "2 messages in IndexedDB");
  await page.reload();
  await tab("ursula", { page });
  await waitFor(async () => (await read(page, "window.persisted.length")) === 2, "the stored messages to be sent after the reload");
  assert.deepEqual(await read(page, "window.persisted.map((o) => o.seq)"), [1, 2]);
  assert.equal((await page.evaluate(() => window.client.outbox())).length, 0);
  const history = await node.rest("ursula", "GET", `/v1/messages/conversations/${room.id}?after_seq=0`);
  assert.deepEqual(history.items.map((m) => m.content.text), ["offline 1", "offline 2"]);
});

test("a page whose node is killed and restarted mid-burst reconnects and resumes: every message once, in order", { skip, timeout: 300_000 }, async () => {
  const room = await node.rest("bob", "POST", "/v1/conversations", { type: "group", title: "Browser resume", members: ["uma"] });
  const reconnect = { initialDelayMs: 100, maxDelayMs: 2000 };
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${node.url}/health/live`);
  await page.evaluate(async ({ url, token, room, reconnect }) => {
    const { CaasClient } = await import("/sdk/caas-client.js");
    Object.assign(window, { seen: [], states: [], resumed: [] });
    window.client = new CaasClient({ url, token, reconnect });
    window.client.on("message", (m) => {
      if (m.conversation_id === room) window.seen.push(m.seq);
    });
    window.client.on("state", (s) => window.states.push(s.state));
    window.client.on("resumed", (r) => window.resumed.push(r));
    await window.client.connect();
    await window.client.joinRoom(room);
  }, { url: node.url, token: node.token("uma"), room: room.id, reconnect });

  // The sender is a Node.js client of the same SDK, with its own queue and retries.
  const bob = new CaasClient({ url: node.url, token: node.token("bob"), reconnect });
  await bob.connect();
  const n = 120;
  const sent = Promise.all(Array.from({ length: n }, (_, i) => bob.send(room.id, `burst ${i + 1}`, { messageId: `${room.id}-b${i + 1}` })));
  await waitFor(async () => (await read(page, "window.seen.length")) >= 20, "the page to have 20 messages");
  await node.kill();
  await waitFor(async () => (await read(page, "window.states")).includes("reconnecting"), "the page to notice the node is gone");
  await node.start();

  const outcomes = await sent;
  assert.deepEqual(outcomes.map((o) => o.status), Array(n).fill("persisted"), "every send persisted");
  assert.deepEqual(outcomes.map((o) => o.seq), Array.from({ length: n }, (_, i) => i + 1), "in queue order, each once");
  await waitFor(async () => (await read(page, "window.seen.length")) >= n, `the page to have all ${n} messages`);
  assert.deepEqual(await read(page, "window.seen"), Array.from({ length: n }, (_, i) => i + 1), "every message once, in order");
  assert.equal(await read(page, "window.client.state"), "connected");
  const resumed = await read(page, "window.resumed");
  assert.ok(resumed.some((r) => r.conversation_id === room.id && r.via === "resume"), `resumed through Resume: ${JSON.stringify(resumed)}`);
  await bob.close();
  await read(page, "window.client.close()");
  await page.close();
});
