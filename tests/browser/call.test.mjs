// Two headless Chromium browsers call each other through /console/call.html: ICE servers (TURN REST credentials)
// from the node, signaling only through the node's hub, iceTransportPolicy "relay" so the media must go through
// coturn. Chromium's fake camera and microphone are the media. Then a recording with consent: alice asks, bob allows,
// alice's page records; carol opens the page, joins the call going on, and refuses, which ends the recording, and
// alice's page uploads what was recorded. Run by Caas.Web.Tests (BrowserCallTests), which starts the node (its TURN
// servers the coturn instances of scripts/test.sh), creates the conversation (alice, bob, carol) and passes:
//   CAAS_URL, CAAS_TOKEN_ALICE, CAAS_TOKEN_BOB, CAAS_TOKEN_CAROL, CAAS_CONVERSATION, CAAS_ARTIFACTS (screenshot folder).
// Prints "RECORDING {recording_id, file_id, bytes}" and "result: {...}" (what it saw) and exits 0 when every step
// held, 1 otherwise (with the failed step).
// Every wait polls for a condition, bounded but generous: nothing depends on the machine's speed.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const url = process.env.CAAS_URL;
const tokens = { alice: process.env.CAAS_TOKEN_ALICE, bob: process.env.CAAS_TOKEN_BOB, carol: process.env.CAAS_TOKEN_CAROL };
const conversation = process.env.CAAS_CONVERSATION;
const artifacts = process.env.CAAS_ARTIFACTS ?? "artifacts/browser";
if (!url || !tokens.alice || !tokens.bob || !tokens.carol || !conversation) {
  console.error("CAAS_URL, CAAS_TOKEN_ALICE, CAAS_TOKEN_BOB, CAAS_TOKEN_CAROL and CAAS_CONVERSATION are required");
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

// The recording as a page knows it (window.caasCall.recording without its recorder and blobs).
const recording = (page) => page.evaluate(() => {
  const r = window.caasCall.recording;
  return r && { id: r.id, requestedBy: r.requestedBy, mine: r.mine, status: r.status, reason: r.reason, consents: r.consents,
    bytes: r.bytes, pieces: r.pieces, recorder: r.recorder?.state ?? null, upload: r.upload, fileId: r.fileId, uploadedBytes: r.uploadedBytes ?? null,
    error: r.error };
});

let browser;
let failed = false;
const pages = {};
const result = {};

async function open(who, extra = "") {
  // A context each: separate browsers as far as the page can tell (own storage, own permissions).
  const context = await browser.newContext({ viewport: { width: 800, height: 600 }, permissions: ["camera", "microphone"] });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`${who} page error: ${e.message}`));
  pages[who] = page;
  step(`${who} opens the call page`);
  await page.goto(`${url}/console/call.html?relay=1&conversation=${encodeURIComponent(conversation)}&token=${encodeURIComponent(tokens[who])}${extra}`);
  await page.locator('#status[data-state="connected"]').waitFor();
  return page;
}

try {
  browser = await chromium.launch({
    executablePath: process.env.CAAS_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      "--autoplay-policy=no-user-gesture-required", "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows"],
  });
  for (const who of ["alice", "bob"]) await open(who);
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

  step("alice asks to record; bob's page asks him and he allows; both pages see it recording");
  await alice.locator("#record:not([hidden])").click();
  await bob.locator("#consent:not([hidden])").waitFor();
  const asker = await bob.locator("#consent-from").textContent();
  if (asker !== "alice") throw new Error(`bob's page says ${asker} asks to record`);
  await bob.locator("#allow").click();
  for (const page of [alice, bob]) await page.locator('#recording-state[data-state="recording"]').waitFor();
  const recordingId = (await recording(alice)).id;
  const bobs = await recording(bob);
  if (bobs.id !== recordingId || bobs.mine || bobs.recorder) throw new Error(`bob's page has ${JSON.stringify(bobs)}`);

  step("alice's page records the remote stream: a few seconds of data (a piece a second)");
  result.recording = await until("alice's recorder to have 3 pieces", async () => {
    const r = await recording(alice);
    return { ok: r.recorder === "recording" && r.pieces >= 3 && r.bytes > 0, value: r };
  });
  for (const [who, page] of Object.entries(pages)) await page.screenshot({ path: join(artifacts, `call-${who}-recording.png`) });

  step("carol opens the page, sees the call going on and joins; the recording pauses until she answers");
  const carol = await open("carol");
  await carol.locator("#ongoing:not([hidden])").waitFor();
  await carol.locator("#join").click();
  await carol.locator("#consent:not([hidden])").waitFor();
  for (const page of [alice, bob]) await page.locator('#recording-state[data-state="paused"]').waitFor();
  const paused = await recording(alice);
  if (paused.recorder !== "paused") throw new Error(`alice's recorder is ${paused.recorder} while the recording is paused`);

  step("carol refuses: every page sees the recording declined (refused); alice's page uploads what was recorded");
  await carol.locator("#refuse").click();
  for (const [who, page] of Object.entries(pages)) {
    await page.locator('#recording-state[data-state="declined"]').waitFor();
    const r = await recording(page);
    if (r.id !== recordingId || r.reason !== "refused") throw new Error(`${who}'s page has ${JSON.stringify(r)}`);
  }
  await alice.locator('#recording-upload[data-state="uploaded"], #recording-upload[data-state="failed"]').waitFor();
  const uploaded = await recording(alice);
  if (uploaded.upload !== "uploaded" || !uploaded.fileId) throw new Error(`alice's upload: ${JSON.stringify(uploaded)}`);
  result.recording = uploaded;
  console.log(`RECORDING ${JSON.stringify({ recording_id: uploaded.id, file_id: uploaded.fileId, bytes: uploaded.uploadedBytes })}`);
  for (const [who, page] of Object.entries(pages)) await page.screenshot({ path: join(artifacts, `call-${who}-declined.png`) });

  step("carol hangs up, then alice; every page sees the call end");
  await carol.locator("#hangup:not([disabled])").click();
  await alice.locator("#hangup:not([disabled])").click();
  for (const [who, page] of Object.entries(pages)) {
    await page.locator('#call-state[data-state="ended"]').waitFor();
    result[who] = { ...result[who], ended: await page.evaluate(() => window.caasCall.ended) };
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
