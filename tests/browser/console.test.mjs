// Two headless Chromium pages chat with each other through the node's /console page (SignalR over WebSockets).
// Run by Caas.Web.Tests (BrowserConsoleTests), which starts the node and passes:
//   CAAS_URL, CAAS_TOKEN_ALICE, CAAS_TOKEN_BOB (alice and bob in one tenant), CAAS_ARTIFACTS (screenshot folder).
// Exits 0 when every step held, 1 otherwise (with the step that failed and both pages' screenshots).
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.env.CAAS_URL;
const tokens = { alice: process.env.CAAS_TOKEN_ALICE, bob: process.env.CAAS_TOKEN_BOB };
const artifacts = process.env.CAAS_ARTIFACTS ?? "artifacts/browser";
if (!url || !tokens.alice || !tokens.bob) {
  console.error("CAAS_URL, CAAS_TOKEN_ALICE and CAAS_TOKEN_BOB are required");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const step = (text) => console.log(`step: ${text}`);
const profile = mkdtempSync(join(tmpdir(), "caas-chromium-"));
const deadline = setTimeout(() => { console.error("timed out after 240 s"); process.exit(1); }, 240_000);
let context;
let failed = false;
const pages = {};
try {
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
    await page.goto(`${url}/console/?token=${encodeURIComponent(tokens[who])}`);
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
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(deadline);
}
console.log(failed ? "browser console test FAILED" : "browser console test passed");
process.exit(failed ? 1 : 0);
