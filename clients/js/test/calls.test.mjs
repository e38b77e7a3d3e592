// Calls through the SDK against a real node: ringing, accepting, signaling, quality, a recording with consent, the end,
// the call summary message, the call list, ICE servers, errors, call events after a reconnect, and a call missed while
// offline arriving as durable callUpdated events through the resume.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { CaasClient, CaasError, isCallContent } from "../dist/esm/index.js";
import { CaasNode, DropProxy, waitFor } from "./node.mjs";

let node;
const clients = [];
const proxies = [];
const client = (user, url = node.url) => {
  const c = new CaasClient({ url, token: node.token(user), reconnect: { initialDelayMs: 100, maxDelayMs: 2000 } });
  clients.push(c);
  return c;
};

const CALL_EVENTS = [
  "callRinging", "callAccepted", "callAnsweredElsewhere", "callDeclined", "participantJoined", "participantBusy", "participantLeft",
  "callMissed", "callEnded", "signal", "recordingConsentRequested", "recordingConsented", "recordingStarted", "recordingStopped",
  "recordingDeclined",
];

/** Every call event and message a client sees, in order: `find(name, pred)` answers the first match (or undefined). */
function recorder(c) {
  const seen = [];
  for (const name of [...CALL_EVENTS, "message"]) c.on(name, (payload) => seen.push({ name, payload }));
  return {
    seen,
    find: (name, pred = () => true) => seen.find((e) => e.name === name && pred(e.payload))?.payload,
  };
}

before(async () => {
  node = new CaasNode();
  await node.start();
  await node.liftLimits();
});

after(async () => {
  for (const c of clients) await c.close();
  for (const p of proxies) await p.close();
  await node?.dispose();
});

test("a call: ringing, accept, signal, quality, a consented recording, the end and its summary message", { timeout: 300_000 }, async () => {
  const alice = client("alice");
  const bob = client("bob");
  await Promise.all([alice.connect(), bob.connect()]);
  const room = await alice.rest.createConversation({ type: "group", title: "SDK calls", members: ["bob"] });
  await Promise.all([alice.joinRoom(room.id), bob.joinRoom(room.id)]);
  const a = recorder(alice);
  const b = recorder(bob);

  const started = await alice.startCall(room.id, "audio");
  assert.equal(started.status, "ringing");
  assert.deepEqual(started.joined, ["alice"]);
  assert.deepEqual(started.ringing, ["bob"]);
  assert.equal(started.success, undefined, "the typed answer has no success flag");
  const callId = started.call_id;

  const ringing = await waitFor(() => b.find("callRinging", (e) => e.call_id === callId), "bob's callRinging");
  assert.deepEqual([ringing.conversation_id, ringing.from_user_id, ringing.media], [room.id, "alice", "audio"]);

  const accepted = await bob.acceptCall(callId);
  assert.equal(accepted.status, "active");
  assert.deepEqual([...accepted.joined].sort(), ["alice", "bob"]);
  assert.equal(accepted.recording, null);
  const joined = await waitFor(() => a.find("participantJoined", (e) => e.call_id === callId), "alice's participantJoined");
  assert.equal(joined.user_id, "bob");
  await waitFor(() => a.find("callAccepted", (e) => e.call_id === callId && e.user_id === "bob"), "alice's callAccepted");

  const offer = { type: "offer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };
  assert.deepEqual(await alice.sendSignal(callId, "bob", "offer", offer), { call_id: callId });
  const signal = await waitFor(() => b.find("signal", (e) => e.call_id === callId && e.kind === "offer"), "bob's offer signal");
  assert.equal(signal.from_user_id, "alice");
  assert.equal(typeof signal.from_connection_id, "string");
  assert.deepEqual(signal.payload, offer);
  await bob.sendSignal(callId, "alice", "answer", { type: "answer", sdp: "v=0\r\n" });
  await waitFor(() => a.find("signal", (e) => e.call_id === callId && e.kind === "answer" && e.from_user_id === "bob"), "alice's answer signal");

  assert.deepEqual(await alice.reportCallQuality(callId, { rtt_ms: 42, packet_loss_pct: 0.5 }), { call_id: callId });

  const requested = await alice.requestRecording(callId);
  assert.equal(requested.status, "pending");
  assert.deepEqual(requested.awaiting, ["bob"]);
  const recordingId = requested.recording_id;
  const ask = await waitFor(() => b.find("recordingConsentRequested", (e) => e.recording_id === recordingId), "bob's recordingConsentRequested");
  assert.deepEqual([ask.call_id, ask.requested_by, ask.awaiting], [callId, "alice", ["bob"]]);
  const consented = await bob.consentRecording(callId, recordingId, true);
  assert.equal(consented.status, "recording");
  assert.deepEqual(consented.consents.map((c) => [c.user_id, c.consent]).sort(), [["alice", true], ["bob", true]]);
  for (const [who, r] of [["alice", a], ["bob", b]]) {
    await waitFor(() => r.find("recordingStarted", (e) => e.recording_id === recordingId), `${who}'s recordingStarted`);
  }

  const ended = await alice.endCall(callId);
  assert.equal(ended.status, "ended");
  for (const [who, r] of [["alice", a], ["bob", b]]) {
    const e = await waitFor(() => r.find("callEnded", (x) => x.call_id === callId), `${who}'s callEnded`);
    assert.equal(e.reason, "ended");
    assert.equal(e.ended_by, "alice");
    assert.deepEqual([...e.participants].sort(), ["alice", "bob"]);
    const stopped = await waitFor(() => r.find("recordingStopped", (x) => x.recording_id === recordingId), `${who}'s recordingStopped`);
    assert.equal(stopped.reason, "call_ended");
  }

  // The summary lands in the conversation as a message of the starter, to both members, once.
  for (const [who, r] of [["alice", a], ["bob", b]]) {
    const m = await waitFor(() => r.find("message", (x) => x.conversation_id === room.id && isCallContent(x.content)), `${who}'s call summary message`);
    assert.equal(m.sender_id, "alice");
    assert.equal(m.content.type, "call");
    assert.equal(m.content.call_id, callId);
    assert.equal(m.content.media, "audio");
    assert.equal(m.content.reason, "ended");
    assert.deepEqual([...m.content.participants].sort(), ["alice", "bob"]);
    const q = m.content.quality.find((x) => x.user_id === "alice");
    assert.equal(q.reports, 1);
    assert.equal(q.rtt_ms.max, 42);
    assert.equal(r.seen.filter((x) => x.name === "message" && isCallContent(x.payload.content)).length, 1, "the summary once");
  }
  assert.equal(isCallContent({ type: "text", text: "hi" }), false);
  assert.equal(isCallContent({ type: "call", text: null }), false, "an erased summary has no call fields");
  assert.equal(isCallContent(null), false);

  const list = await bob.rest.calls(room.id, 10);
  assert.equal(list.active, null);
  assert.equal(list.items[0].call_id, callId);
  assert.equal(list.items[0].reason, "ended");
  assert.deepEqual([...list.items[0].participants].sort(), ["alice", "bob"]);

  // The recording's bytes: its requester's page uploads them with the recording id, without a size (as a recorder).
  const recorded = new Blob([new Uint8Array([0x1a, 0x45, 0xdf, 0xa3]), new Uint8Array(4092)]); // a WebM head
  const upload = { file_name: `${recordingId}.webm`, content_type: "video/webm", conversation_id: room.id, recording_id: recordingId, declareSize: false };
  await assert.rejects(bob.rest.uploadChunked(recorded, upload), (e) => e instanceof CaasError && e.code === "forbidden", "only the requester uploads");
  const file = await alice.rest.uploadChunked(recorded, upload);
  assert.equal(file.size, 4096);
  assert.equal(file.conversation_id, room.id);
  await assert.rejects(alice.rest.uploadChunked(recorded, upload), (e) => e instanceof CaasError && e.code === "conflict", "once");
});

test("ICE servers from the hub and REST (an empty list with a warning is fine without TURN)", { timeout: 300_000 }, async () => {
  const carol = client("carol");
  await carol.connect();
  for (const ice of [await carol.getIceServers(), await carol.rest.iceServers()]) {
    assert.ok(Array.isArray(ice.ice_servers), JSON.stringify(ice));
    assert.equal(typeof ice.ttl_seconds, "number");
    assert.equal(ice.success, undefined);
    if (ice.ice_servers.length === 0) assert.equal(typeof ice.warning, "string");
    for (const s of ice.ice_servers) assert.ok(Array.isArray(s.urls) && s.urls.length > 0);
  }
});

test("bad call inputs reject with a CaasError and its code; the call still works after them", { timeout: 300_000 }, async () => {
  const alice = client("alice");
  const bob = client("bob");
  const mallory = client("mallory");
  await Promise.all([alice.connect(), bob.connect(), mallory.connect()]);
  const room = await alice.rest.createConversation({ type: "group", title: "SDK call errors", members: ["bob", "dave"] });
  const b = recorder(bob);
  const { call_id: callId } = await alice.startCall(room.id, "video");
  await waitFor(() => b.find("callRinging", (e) => e.call_id === callId), "bob's callRinging");
  await bob.acceptCall(callId);

  const is = (code) => (e) => e instanceof CaasError && e.code === code;
  await assert.rejects(alice.sendSignal(callId, "carol", "offer", { sdp: "x" }), is("not_found"), "a target not in the call");
  await assert.rejects(alice.sendSignal(callId, "dave", "offer", { sdp: "x" }), is("not_found"), "a target still ringing");
  await assert.rejects(alice.sendSignal("call_00000000000000000000000000000000_nope", "bob", "offer", {}), is("not_found"), "a made-up call");
  await assert.rejects(mallory.acceptCall(callId), is("not_found"), "a non-member");
  await assert.rejects(mallory.startCall(room.id, "audio"), is("not_found"), "a non-member starting a call");
  await assert.rejects(alice.startCall(room.id, "audio"), is("conflict"), "a second call in the conversation");
  await assert.rejects(alice.sendSignal(callId, "bob", "bogus", {}), is("validation_failed"), "a bad kind");
  await assert.rejects(alice.reportCallQuality(callId, { rtt_ms: -1 }), is("validation_failed"), "a metric out of range");
  await assert.rejects(bob.endCall(callId), is("forbidden"), "ending someone else's call as a member");
  await assert.rejects(alice.startCall(room.id, "hologram"), is("validation_failed"), "a bad media");

  await alice.sendSignal(callId, "bob", "ice", { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host" });
  await waitFor(() => b.find("signal", (e) => e.call_id === callId && e.kind === "ice"), "bob's ice signal after the errors");
  const left = await bob.leaveCall(callId);
  assert.ok(!left.joined.includes("bob"));
  await alice.leaveCall(callId);
  await waitFor(async () => (await alice.rest.calls(room.id)).items.some((c) => c.call_id === callId), "the call in the list");
});

test("call events keep coming after the connection was dropped and reopened", { timeout: 300_000 }, async () => {
  const proxy = await new DropProxy(node.port).listen();
  proxies.push(proxy);
  const erin = client("erin");
  const frank = client("frank", proxy.url);
  await Promise.all([erin.connect(), frank.connect()]);
  const room = await erin.rest.createConversation({ type: "group", title: "SDK call reconnect", members: ["frank"] });
  const f = recorder(frank);
  const states = [];
  frank.on("state", (s) => states.push(s.state));

  assert.ok(proxy.drop() > 0, "frank's socket went through the proxy");
  await waitFor(() => states.includes("reconnecting") && frank.state === "connected", "frank to reconnect");

  const { call_id: callId } = await erin.startCall(room.id, "audio");
  await waitFor(() => f.find("callRinging", (e) => e.call_id === callId), "frank's callRinging on the new connection");
  const declined = await frank.declineCall(callId);
  assert.equal(declined.status, "ended");
  assert.equal(declined.end_reason, "declined");
  await waitFor(() => f.find("callEnded", (e) => e.call_id === callId), "frank's callEnded");
});

test("a call that rang and ended while the network was down arrives after the reconnect as callUpdated, in order, once", { timeout: 300_000 }, async () => {
  const proxy = await new DropProxy(node.port).listen();
  proxies.push(proxy);
  const gina = client("gina");
  const hal = client("hal", proxy.url);
  await Promise.all([gina.connect(), hal.connect()]);
  const room = await gina.rest.createConversation({ type: "group", title: "SDK call while away", members: ["hal"] });
  await Promise.all([gina.joinRoom(room.id), hal.joinRoom(room.id)]);
  const updates = [];
  const resumed = [];
  const messages = [];
  hal.on("callUpdated", (e) => updates.push(e));
  hal.on("resumed", (e) => resumed.push(e));
  hal.on("message", (m) => messages.push(m));
  await gina.send(room.id, "before");
  await waitFor(() => messages.some((m) => m.content.text === "before"), "hal's message before the cut");

  proxy.refusing = true;
  assert.ok(proxy.drop() > 0, "hal's socket went through the proxy");
  await waitFor(() => hal.state !== "connected", "hal to notice the cut");
  const { call_id: callId } = await gina.startCall(room.id, "video");
  const ended = await gina.endCall(callId);
  assert.equal(ended.status, "ended");
  assert.equal(updates.length, 0, "nothing reached hal while the network was down");

  proxy.refusing = false;
  await waitFor(() => resumed.some((r) => r.conversation_id === room.id) && updates.length >= 2, "hal to resume and get the call's updates");
  await waitFor(() => messages.some((m) => isCallContent(m.content) && m.content.call_id === callId), "the call's summary message");
  assert.equal(resumed.find((r) => r.conversation_id === room.id).via, "resume");
  assert.deepEqual(updates.map((u) => [u.call_id, u.change, u.status]), [[callId, "started", "ringing"], [callId, "ended", "ended"]]);
  assert.deepEqual(updates[0].ringing, ["hal"]);
  assert.equal(updates[1].reason, "ended");
  assert.ok(updates[0].event_seq < updates[1].event_seq, "in event_seq order");
  // Nothing twice: one more live message, then the counts.
  await gina.send(room.id, "after");
  await waitFor(() => messages.some((m) => m.content.text === "after"), "hal's message after the resume");
  assert.equal(updates.length, 2);
  assert.equal(messages.filter((m) => isCallContent(m.content)).length, 1);
});
