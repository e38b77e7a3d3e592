// The SDK's browser bundle in headless Chromium against a real node: two tabs of one user share the IndexedDB send
// queue (one sends, the other's messages go out through it), and messages queued offline survive a page reload.
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
