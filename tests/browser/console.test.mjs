// Two headless Chromium pages chat with each other through the node's /console page (the JavaScript client SDK's
// bundle: SignalR over WebSockets, REST). Bob's page goes through a TCP proxy this script can cut, to check the
// console's reconnect and resume (what was missed comes once, in order; what he sent meanwhile goes out after).
// Run by Caas.Web.Tests (BrowserConsoleTests), which starts the node and passes:
//   CAAS_URL, CAAS_TOKEN_ALICE, CAAS_TOKEN_BOB (alice and bob in one tenant), CAAS_ARTIFACTS (screenshot folder).
// Exits 0 when every step held, 1 otherwise (with the step that failed and both pages' screenshots).
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";

const url = process.env.CAAS_URL;
const tokens = { alice: process.env.CAAS_TOKEN_ALICE, bob: process.env.CAAS_TOKEN_BOB };
const artifacts = process.env.CAAS_ARTIFACTS ?? "artifacts/browser";
if (!url || !tokens.alice || !tokens.bob) {
  console.error("CAAS_URL, CAAS_TOKEN_ALICE and CAAS_TOKEN_BOB are required");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const step = (text) => console.log(`step: ${text}`);

/** A TCP proxy to the node: `cut()` drops every socket through it and refuses new ones until `mend()`. */
class CutProxy {
  constructor(target) {
    this.target = new URL(target);
    this.sockets = new Set();
    this.cutOff = false;
    this.server = net.createServer((client) => {
      if (this.cutOff) { client.destroy(); return; }
      const upstream = net.connect(Number(this.target.port), this.target.hostname);
      const close = () => { client.destroy(); upstream.destroy(); this.sockets.delete(client); this.sockets.delete(upstream); };
      this.sockets.add(client).add(upstream);
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }
  async listen() {
    await new Promise((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${this.server.address().port}`;
  }
  cut() {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
  mend() { this.cutOff = false; }
  close() { this.cut(); this.server.close(); }
}

/** What a console shows: each message's seq and text, in page order. */
const shown = (page) => page.locator("#messages li").evaluateAll((lis) => lis.map((li) => ({
  seq: Number(li.dataset.seq), text: li.querySelector(".text").textContent })));

/** Every message once, seq 1..n in order, and each of `texts` exactly once. */
async function onceInOrder(who, page, n, texts) {
  const items = await shown(page);
  const seqs = items.map((m) => m.seq).join(",");
  const expected = Array.from({ length: n }, (_, i) => i + 1).join(",");
  if (seqs !== expected) throw new Error(`${who} sees ${seqs}, expected ${expected}`);
  for (const text of texts) {
    const count = items.filter((m) => m.text === text).length;
    if (count !== 1) throw new Error(`${who} sees "${text}" ${count} times`);
  }
}
const profile = mkdtempSync(join(tmpdir(), "caas-chromium-"));
const deadline = setTimeout(() => { console.error("timed out after 240 s"); process.exit(1); }, 240_000);
let context;
let failed = false;
const pages = {};
const proxy = new CutProxy(url);
try {
  const bobUrl = await proxy.listen();
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CAAS_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1100, height: 700 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
      // calls from the console: Chromium's fake camera and microphone, no permission prompt
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"],
  });
  context.setDefaultTimeout(15_000);

  for (const who of ["alice", "bob"]) {
    const page = await context.newPage();
    page.on("pageerror", (e) => console.error(`${who} page error: ${e.message}`));
    pages[who] = page;
    step(`${who} signs in`);
    await page.goto(`${who === "bob" ? bobUrl : url}/console/?token=${encodeURIComponent(tokens[who])}`);
    await page.locator('#status[data-state="connected"]').waitFor();
  }
  const { alice, bob } = pages;

  step("alice creates a conversation with bob and is in it");
  await alice.fill("#new-title", "Browser room");
  await alice.fill("#new-members", "bob");
  await alice.click("#create button");
  await alice.locator("#room-title", { hasText: "Browser room" }).waitFor();
  await alice.locator("#message:not([disabled])").waitFor();

  step("bob sees it in his list and joins");
  // The list reads the read model, which trails the write by a projection poll: refresh until it is there.
  const listed = bob.locator("#conversations li", { hasText: "Browser room" });
  for (let i = 0; i < 50 && !(await listed.count()); i++) {
    await bob.click("#refresh");
    await bob.waitForTimeout(200);
  }
  await listed.click();
  await bob.locator("#room-title", { hasText: "Browser room" }).waitFor();
  await bob.locator("#message:not([disabled])").waitFor();

  step("alice sees bob online");
  await alice.locator('#presence li[data-user="bob"][data-status="online"]').waitFor();

  step("bob types and alice sees it");
  await bob.locator("#message").pressSequentially("hi al", { delay: 20 });
  await alice.locator("#typing", { hasText: "bob is typing" }).waitFor();

  step("bob sends, alice receives");
  await bob.fill("#message", "hi alice, from chromium");
  await bob.press("#message", "Enter");
  await alice.locator("#messages li", { hasText: "hi alice, from chromium" }).waitFor();

  step("alice answers, bob receives in order");
  await alice.fill("#message", "hello bob");
  await alice.press("#message", "Enter");
  await bob.locator("#messages li", { hasText: "hello bob" }).waitFor();
  const order = await bob.locator("#messages li .seq").allTextContents();
  if (order.join(",") !== "#1,#2") throw new Error(`bob sees ${order.join(",")}, expected #1,#2`);

  step("alice sees bob's read receipt on her message");
  await alice.locator('#messages li[data-seq="2"] .receipt[data-kind="read"]', { hasText: "read by bob" }).waitFor();

  step("a message from bob's other client (REST) shows on both consoles once, in order");
  const room = await alice.evaluate(() => window.caasConsole.room.id);
  const posted = await fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${tokens.bob}`, "content-type": "application/json" },
    body: JSON.stringify({ conversation_id: room, content: { type: "text", text: "from bob's phone" } }),
  });
  if (posted.status !== 201 && posted.status !== 200) throw new Error(`POST /v1/messages: ${posted.status} ${await posted.text()}`);
  for (const page of [alice, bob]) await page.locator("#messages li", { hasText: "from bob's phone" }).waitFor();
  await bob.waitForTimeout(500); // a second copy would come right after the first
  await onceInOrder("alice", alice, 3, ["from bob's phone"]);
  await onceInOrder("bob", bob, 3, ["from bob's phone"]);

  step("bob's connection is cut: his console shows reconnecting");
  const slow = { timeout: 90_000 };
  proxy.cut();
  await bob.locator('#status[data-state="reconnecting"]').waitFor(slow);

  step("meanwhile alice sends two messages and bob writes one (queued by his console)");
  for (const text of ["while you were away 1", "while you were away 2"]) {
    await alice.fill("#message", text);
    await alice.press("#message", "Enter");
    await alice.locator("#messages li", { hasText: text }).waitFor();
  }
  await bob.fill("#message", "written while offline");
  await bob.press("#message", "Enter");
  await bob.waitForTimeout(1000);
  if (await bob.locator("#messages li", { hasText: "while you were away" }).count()) throw new Error("bob got messages while cut off");

  step("the connection is back: bob's console resumes, with what he missed and what he wrote, each once and in order");
  proxy.mend();
  await bob.locator('#status[data-state="connected"]').waitFor(slow);
  await bob.locator("#messages li", { hasText: "written while offline" }).waitFor(slow);
  await alice.locator("#messages li", { hasText: "written while offline" }).waitFor(slow);
  await bob.waitForTimeout(500);
  const texts = ["from bob's phone", "while you were away 1", "while you were away 2", "written while offline"];
  await onceInOrder("alice", alice, 6, texts);
  await onceInOrder("bob", bob, 6, texts);
  const resumed = (await shown(bob)).slice(3).map((m) => m.text).join(" | ");
  if (resumed !== texts.slice(1).join(" | ")) throw new Error(`bob's console shows ${resumed}`);
  step("bob's console is live again: alice's next message reaches it");
  await alice.fill("#message", "welcome back");
  await alice.press("#message", "Enter");
  await bob.locator("#messages li", { hasText: "welcome back" }).waitFor(slow);
  await onceInOrder("bob", bob, 7, ["welcome back"]);

  // Calls from the console: the call page in a frame (WebRTC, signaling through the hub). This node has no TURN
  // server, so the page uses what the node hands out (nothing) and the two pages reach each other on loopback.
  const long = { timeout: 120_000 };
  step("alice calls bob from the console");
  await alice.click("#call");
  const aliceCall = alice.frameLocator("#call-frame");
  await aliceCall.locator('#call-state[data-state="ringing"]').waitFor(long);

  step("bob's console rings; he answers and joins the call");
  await bob.locator("#incoming:not([hidden])", { hasText: "alice is calling" }).waitFor(long);
  await bob.click("#answer");
  const bobCall = bob.frameLocator("#call-frame");
  await bobCall.locator("#ongoing:not([hidden]) #join").click(long);

  step("the call connects on both pages");
  await aliceCall.locator('#call-state[data-state="connected"]').waitFor(long);
  await bobCall.locator('#call-state[data-state="connected"]').waitFor(long);
  for (const [who, page] of Object.entries(pages))
    await page.screenshot({ path: join(artifacts, `console-${who}-call.png`), fullPage: true }).catch(() => {});

  step("alice hangs up; both consoles show the call's summary message");
  await aliceCall.locator("#hangup").click();
  for (const page of [alice, bob])
    await page.locator('#messages li[data-kind="call"]', { hasText: "video call" }).waitFor(long);
} catch (e) {
  failed = true;
  console.error(`failed: ${e.message}`);
} finally {
  for (const [who, page] of Object.entries(pages)) {
    await page.screenshot({ path: join(artifacts, `console-${who}.png`), fullPage: true }).catch(() => {});
  }
  await context?.close().catch(() => {});
  proxy.close();
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(deadline);
}
console.log(failed ? "browser console test FAILED" : "browser console test passed");
process.exit(failed ? 1 : 0);
