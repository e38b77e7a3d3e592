// Two headless Chromium browsers call each other through /console/call.html: ICE servers (TURN REST credentials)
// from the node, signaling only through the node's hub, iceTransportPolicy "relay" so the media must go through
// coturn. Chromium's fake camera and microphone are the media. Run by Caas.Web.Tests (BrowserCallTests), which
// starts the node (its TURN servers the coturn instances of scripts/test.sh), creates the conversation and passes:
//   CAAS_URL, CAAS_TOKEN_ALICE, CAAS_TOKEN_BOB, CAAS_CONVERSATION, CAAS_ARTIFACTS (screenshot folder).
// Prints "result: {...}" (what it saw) and exits 0 when every step held, 1 otherwise (with the failed step).
// Every wait polls for a condition, bounded but generous: nothing depends on the machine's speed.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const url = process.env.CAAS_URL;
const tokens = { alice: process.env.CAAS_TOKEN_ALICE, bob: process.env.CAAS_TOKEN_BOB };
const conversation = process.env.CAAS_CONVERSATION;
const artifacts = process.env.CAAS_ARTIFACTS ?? "artifacts/browser";
if (!url || !tokens.alice || !tokens.bob || !conversation) {
  console.error("CAAS_URL, CAAS_TOKEN_ALICE, CAAS_TOKEN_BOB and CAAS_CONVERSATION are required");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const WAIT = 120_000;
const step = (text) => console.log(`step: ${text}`);
const deadline = setTimeout(() => { console.error("timed out after 270 s"); process.exit(1); }, 270_000);

// What one side's getStats says: the selected candidate pair's candidate types and the bytes received over RTP.
async function stats(page) {
  return page.evaluate(async () => {
    const pc = window.caasCall.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    const all = [...report.values()];
    const transport = all.find((s) => s.type === "transport" && s.selectedCandidatePairId);
    const pair = transport ? report.get(transport.selectedCandidatePairId)
      : all.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
    const local = pair && report.get(pair.localCandidateId);
    const remote = pair && report.get(pair.remoteCandidateId);
    const inbound = all.filter((s) => s.type === "inbound-rtp");
    return {
      connectionState: pc.connectionState,
      local: local ? { type: local.candidateType, protocol: local.protocol, relayProtocol: local.relayProtocol, url: local.url } : null,
      remote: remote ? { type: remote.candidateType } : null,
      bytesReceived: inbound.reduce((n, s) => n + (s.bytesReceived ?? 0), 0),
      inboundKinds: inbound.filter((s) => (s.bytesReceived ?? 0) > 0).map((s) => s.kind).sort(),
    };
  });
}

async function until(what, probe, ms = WAIT) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await probe();
    if (last.ok) return last.value;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what} did not happen within ${ms / 1000} s; last seen ${JSON.stringify(last?.value)}`);
}

let browser;
let failed = false;
const pages = {};
const result = {};
try {
  browser = await chromium.launch({
    executablePath: process.env.CAAS_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      "--autoplay-policy=no-user-gesture-required", "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows"],
  });
  for (const who of ["alice", "bob"]) {
    // A context each: two browsers as far as the page can tell (own storage, own permissions).
    const context = await browser.newContext({ viewport: { width: 800, height: 600 }, permissions: ["camera", "microphone"] });
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    page.on("pageerror", (e) => console.error(`${who} page error: ${e.message}`));
    pages[who] = page;
    step(`${who} opens the call page`);
    await page.goto(`${url}/console/call.html?relay=1&conversation=${encodeURIComponent(conversation)}&token=${encodeURIComponent(tokens[who])}`);
    await page.locator('#status[data-state="connected"]').waitFor();
  }
  const { alice, bob } = pages;

  step("alice calls; bob's page rings and he accepts");
  await alice.locator("#call:not([disabled])").click();
  await bob.locator("#incoming:not([hidden])").waitFor();
  await bob.locator("#accept").click();

  step("both peer connections reach connected");
  for (const [who, page] of Object.entries(pages)) {
    await page.locator('#call-state[data-state="connected"]').waitFor();
    result[who] = await until(`${who}'s selected candidate pair`, async () => {
      const s = await stats(page);
      return { ok: !!(s && s.connectionState === "connected" && s.local && s.remote), value: s };
    });
  }

  step("the ICE servers came from the node, with TURN REST credentials, and the policy was relay");
  for (const [who, page] of Object.entries(pages)) {
    const config = await page.evaluate(() => ({ servers: window.caasCall.iceServers, policy: window.caasCall.pc.getConfiguration().iceTransportPolicy }));
    if (config.policy !== "relay") throw new Error(`${who}'s policy is ${config.policy}`);
    const turn = config.servers.filter((s) => s.urls.some((u) => u.startsWith("turn:")) && s.username?.endsWith(`:${who}`) && s.credential);
    if (!turn.length) throw new Error(`${who} got no TURN server with credentials: ${JSON.stringify(config.servers)}`);
  }

  step("the selected candidate pair is relay on both sides");
  for (const who of ["alice", "bob"]) {
    const s = result[who];
    if (s.local.type !== "relay" || s.remote.type !== "relay") throw new Error(`${who}'s selected pair is ${JSON.stringify(s)}`);
  }

  step("media flows both ways: inbound-rtp bytesReceived grows on both sides");
  for (const [who, page] of Object.entries(pages)) {
    const first = await until(`${who} receiving media`, async () => {
      const s = await stats(page);
      return { ok: s.bytesReceived > 0, value: s };
    });
    const later = await until(`${who}'s received bytes growing`, async () => {
      const s = await stats(page);
      return { ok: s.bytesReceived > first.bytesReceived, value: s };
    });
    result[who] = { ...later, bytesReceivedFirst: first.bytesReceived };
  }

  step("alice hangs up; both pages see the call end");
  await alice.locator("#hangup:not([disabled])").click();
  for (const [who, page] of Object.entries(pages)) {
    await page.locator('#call-state[data-state="ended"]').waitFor();
    result[who].ended = await page.evaluate(() => window.caasCall.ended);
  }
  result.callId = result.alice.ended?.call_id;
} catch (e) {
  failed = true;
  console.error(`failed: ${e.message}`);
} finally {
  for (const [who, page] of Object.entries(pages)) {
    await page.screenshot({ path: join(artifacts, `call-${who}.png`) }).catch(() => {});
  }
  await browser?.close().catch(() => {});
  clearTimeout(deadline);
}
console.log(`result: ${JSON.stringify(result)}`);
console.log(failed ? "browser call test FAILED" : "browser call test passed");
process.exit(failed ? 1 : 0);
