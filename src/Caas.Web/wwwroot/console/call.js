// A minimal one-to-one WebRTC call over CAAS, through the JavaScript client SDK (lib/caas-client.js): ICE servers
// (TURN REST credentials) from the hub (getIceServers), the call's lifecycle and the SDP/ICE exchange only through the
// hub (startCall, acceptCall, declineCall, sendSignal, leaveCall; events callRinging, callAccepted, signal,
// participantLeft, callEnded). Open /console/call.html?token=JWT&conversation=ID[&relay=1][&call=CALL_ID]. A call
// already going on in the conversation (rest.calls, or the call parameter) can be joined (acceptCall). Recording with
// consent: Record (requestRecording), a consent prompt on recordingConsentRequested (consentRecording); on the
// requester's page a MediaRecorder over the remote stream (WebM) while every participant consents, paused while one who
// joined has not, uploaded through the media API's chunked upload (rest.uploadChunked) with the recording id once it is
// over (declined, stopped, hang-up). window.caasCall exposes the state (for tests and debugging).
import { CaasClient, MemoryQueueStorage } from "./lib/caas-client.js";

const $ = (id) => document.getElementById(id);
// Parameters come from the query or the fragment (#token=…: the /console page passes the token there, so it never
// reaches a server's access log).
const params = new URLSearchParams([location.search.slice(1), location.hash.slice(1)].filter(Boolean).join("&"));
const call = { client: null, me: null, conversation: params.get("conversation"), id: null, peer: null, pc: null,
  local: null, pending: [], ended: null, iceServers: [], token: params.get("token"), ongoing: null, recording: null };
window.caasCall = call;

function log(text) { $("log").textContent = text; }
function setState(id, text) { $(id).textContent = text; $(id).dataset.state = text; }
const payloadOf = (e) => (typeof e === "string" ? JSON.parse(e) : e);

const problem = (e) => (e?.code ? `${e.code}: ${e.message}` : String(e?.message ?? e));

// The node hands out only TURN servers its health check found working: ask again (bounded) until there is one. Without
// "relay only", a node with no TURN server (the embedded default) is fine after a few tries: on one machine or one LAN
// the browsers reach each other directly.
async function iceServers() {
  for (let attempt = 0; attempt < 120; attempt++) {
    try {
      const result = await call.client.getIceServers();
      if (result.ice_servers.length || (!$("relay-only").checked && attempt >= 2)) return result.ice_servers;
      log(result.warning || "no ICE server yet");
    } catch (e) {
      log(problem(e)); // e.g. rate_limited: ask again
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error("no ICE server from the node");
}

async function newPeerConnection() {
  call.iceServers = await iceServers();
  call.local ??= await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  $("local").srcObject = call.local;
  const pc = new RTCPeerConnection({ iceServers: call.iceServers, iceTransportPolicy: $("relay-only").checked ? "relay" : "all" });
  call.local.getTracks().forEach((t) => pc.addTrack(t, call.local));
  pc.onicecandidate = (e) => {
    if (e.candidate && call.peer) signal("ice", e.candidate.toJSON()).catch((err) => log(problem(err)));
  };
  pc.oniceconnectionstatechange = () => setState("ice-state", pc.iceConnectionState);
  pc.onconnectionstatechange = () => { if (pc.connectionState === "connected") setState("call-state", "connected"); };
  pc.ontrack = (e) => { $("remote").srcObject = e.streams[0]; };
  call.pc = pc;
  return pc;
}

const signal = (kind, payload) => call.client.sendSignal(call.id, call.peer, kind, payload);

async function onSignal(e) {
  e = payloadOf(e);
  if (e.call_id !== call.id || !call.pc) return;
  const pc = call.pc;
  if (e.kind === "offer") {
    call.peer = e.from_user_id;
    await pc.setRemoteDescription(e.payload);
    await pc.setLocalDescription(await pc.createAnswer());
    await signal("answer", { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
  } else if (e.kind === "answer") {
    await pc.setRemoteDescription(e.payload);
  } else if (e.kind === "ice") {
    if (!pc.remoteDescription) { call.pending.push(e.payload); return; }
    await pc.addIceCandidate(e.payload);
    return;
  }
  for (const candidate of call.pending.splice(0)) await pc.addIceCandidate(candidate);
}

async function startCall() {
  await newPeerConnection();
  const started = await call.client.startCall(call.conversation, "video");
  call.id = started.call_id;
  call.ended = null;
  setState("call-state", "ringing");
  $("call").disabled = true;
  $("hangup").disabled = false;
  $("ongoing").hidden = true;
  $("record").hidden = false;
}

// The callee answered: the caller offers to them.
async function onAccepted(e) {
  e = payloadOf(e);
  if (e.call_id !== call.id || e.user_id === call.me || call.peer) return;
  call.peer = e.user_id;
  setState("call-state", "connecting");
  const offer = await call.pc.createOffer();
  await call.pc.setLocalDescription(offer);
  await signal("offer", { type: offer.type, sdp: offer.sdp });
}

function onRinging(e) {
  e = payloadOf(e);
  if (call.id) return;
  call.id = e.call_id;
  call.ended = null;
  $("incoming-from").textContent = e.from_user_id;
  $("incoming").hidden = false;
  setState("call-state", "incoming");
}

async function accept() {
  $("incoming").hidden = true;
  $("ongoing").hidden = true;
  await newPeerConnection(); // before AcceptCall: the offer may follow its answer at once
  const joined = await call.client.acceptCall(call.id);
  setState("call-state", "connecting");
  $("call").disabled = true;
  $("hangup").disabled = false;
  $("record").hidden = false;
  if (joined.recording) onRecordingState(joined.recording); // a recording going on: asked to consent before media flows
}

// A call already going on in the conversation (one is rung only when it starts): joined like an answer.
async function findOngoing() {
  if (call.id) return;
  const id = params.get("call")
    ?? (await call.client.rest.calls(call.conversation, 1)).active?.call_id;
  if (!id || call.id) return;
  call.ongoing = id;
  $("ongoing").hidden = false;
}

async function join() {
  if (!call.ongoing || call.id) return;
  call.id = call.ongoing;
  call.ongoing = null;
  call.ended = null;
  await accept();
}

async function decline() {
  $("incoming").hidden = true;
  await call.client.declineCall(call.id);
  reset();
}

async function hangup() {
  const id = call.id;
  reset();
  if (id) await call.client.leaveCall(id);
}

function reset() {
  const r = call.recording;
  if (r && ["pending", "recording", "paused"].includes(r.status)) {
    setRecording(r, "stopped", "hang-up");
    finishRecording(r); // stops the recorder now (before the peer connection closes), uploads in the background
  }
  $("record").hidden = true;
  $("consent").hidden = true;
  $("ongoing").hidden = true;
  call.ongoing = null;
  call.pc?.close();
  call.pc = null;
  call.id = null;
  call.peer = null;
  call.pending = [];
  $("remote").srcObject = null;
  $("incoming").hidden = true;
  $("call").disabled = false;
  $("hangup").disabled = true;
  setState("ice-state", "closed");
  setState("call-state", "idle");
}

// ---- recording with consent ---------------------------------------------------------------------------------------

// The call's recording as this page knows it; a new recording id starts a new one.
function recordingFor(recordingId, requestedBy) {
  let r = call.recording;
  if (!r || r.id !== recordingId) {
    r = call.recording = { id: recordingId, requestedBy: null, mine: false, status: "pending", reason: null, awaiting: [], consents: {},
      recorder: null, stopped: null, chunks: [], bytes: 0, pieces: 0, startedAt: null, finishing: null, upload: "none", fileId: null, error: null };
  }
  if (requestedBy) {
    r.requestedBy = requestedBy;
    r.mine = requestedBy === call.me;
  }
  return r;
}

function setRecording(r, status, detail) {
  r.status = status;
  r.reason = detail ?? null;
  setState("recording-state", status);
  if (detail) $("recording-state").textContent = `${status} (${detail})`;
}

function setUpload(r, state, detail) {
  r.upload = state;
  setState("recording-upload", state);
  $("recording-file").textContent = detail ?? "";
}

function askConsent(r) {
  $("consent-from").textContent = r.requestedBy ?? "a participant";
  $("consent").hidden = false;
}

async function record() {
  const asked = await call.client.requestRecording(call.id);
  const r = recordingFor(asked.recording_id, call.me);
  if (r.status === "pending") setRecording(r, "pending", asked.awaiting.length ? `awaiting ${asked.awaiting.join(", ")}` : null);
}

async function consent(yes) {
  const r = call.recording;
  if (!r) return;
  $("consent").hidden = true;
  await call.client.consentRecording(call.id, r.id, yes);
}

// AcceptCall's answer: the call's recording as it is (status pending|recording|paused, whose consent is awaited).
function onRecordingState(state) {
  const requester = state.consents?.find((c) => c.how === "requested")?.user_id;
  const r = recordingFor(state.recording_id, requester);
  if (r.status === "pending" || r.status === "paused" || r.status === "recording") {
    setRecording(r, state.status, state.awaiting?.length ? `awaiting ${state.awaiting.join(", ")}` : null);
    r.awaiting = state.awaiting ?? [];
  }
  if (r.awaiting.includes(call.me)) askConsent(r);
}

function onConsentRequested(e) {
  e = payloadOf(e);
  if (e.call_id !== call.id) return;
  const r = recordingFor(e.recording_id, e.requested_by);
  r.awaiting = e.awaiting ?? [];
  if (r.status === "pending") setRecording(r, "pending", r.awaiting.length ? `awaiting ${r.awaiting.join(", ")}` : null);
  if (r.awaiting.includes(call.me) && r.consents[call.me] === undefined) askConsent(r);
}

function onConsented(e) {
  e = payloadOf(e);
  if (e.call_id !== call.id || call.recording?.id !== e.recording_id) return;
  call.recording.consents[e.user_id] = e.consent;
  if (e.user_id === call.me) $("consent").hidden = true;
}

function onRecordingStarted(e) {
  e = payloadOf(e);
  if (e.call_id !== call.id) return;
  const r = recordingFor(e.recording_id, e.requested_by);
  setRecording(r, "recording");
  $("consent").hidden = true;
  if (r.mine) startRecorder(r);
}

function onRecordingStopped(e) {
  e = payloadOf(e);
  if (e.call_id !== call.id) return;
  const r = recordingFor(e.recording_id);
  if (e.reason === "consent_pending") {
    // Someone joined who has not consented: paused until they do (recordingStarted resumes it).
    setRecording(r, "paused", e.awaiting?.length ? `awaiting ${e.awaiting.join(", ")}` : e.reason);
    if (r.recorder?.state === "recording") r.recorder.pause();
    return;
  }
  setRecording(r, "stopped", e.reason);
  $("consent").hidden = true;
  finishRecording(r);
}

function onRecordingDeclined(e) {
  e = payloadOf(e);
  if (e.call_id !== call.id) return;
  const r = recordingFor(e.recording_id);
  setRecording(r, "declined", e.reason);
  r.declinedBy = e.user_ids ?? [];
  $("consent").hidden = true;
  finishRecording(r); // after it had started: what was recorded is uploaded
}

// The requester records the remote stream (what the other side sends: the simplest robust choice) as WebM.
function startRecorder(r) {
  if (r.recorder) {
    if (r.recorder.state === "paused") r.recorder.resume();
    return;
  }
  const stream = $("remote").srcObject;
  if (!stream) throw new Error("no remote stream to record");
  const types = stream.getVideoTracks().length ? ["video/webm;codecs=vp8,opus", "video/webm"] : ["audio/webm;codecs=opus", "audio/webm"];
  const mimeType = types.find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  recorder.ondataavailable = (e) => {
    if (!e.data.size) return;
    r.chunks.push(e.data);
    r.bytes += e.data.size;
    r.pieces++;
  };
  r.stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
  recorder.start(1000); // a piece a second: what was recorded is kept even if the page cannot stop it cleanly
  r.recorder = recorder;
  r.startedAt = Date.now();
}

// Once the recording is over: stop the recorder (synchronously, before anything closes its tracks) and upload its
// bytes with the recording id. Only the requester's page records; once only.
function finishRecording(r) {
  if (!r.mine || !r.recorder) return Promise.resolve();
  if (!r.finishing) {
    if (r.recorder.state !== "inactive") r.recorder.stop();
    r.finishing = uploadRecording(r).catch((e) => {
      r.error = problem(e);
      setUpload(r, "failed", r.error);
    });
  }
  return r.finishing;
}

async function uploadRecording(r) {
  await r.stopped;
  const type = (r.recorder.mimeType || "video/webm").split(";")[0];
  const blob = new Blob(r.chunks, { type });
  if (!blob.size) throw new Error("nothing was recorded");
  setUpload(r, "uploading", `0 / ${blob.size} bytes`);
  // No size up front (as a recorder: the short last chunk ends the file); each request retried while it may pass.
  const file = await call.client.rest.uploadChunked(blob, {
    file_name: `${r.id}.webm`, content_type: type, conversation_id: call.conversation, recording_id: r.id, declareSize: false,
    onProgress: (sent, total) => setUpload(r, "uploading", `${sent} / ${total} bytes`),
  });
  r.fileId = file.id;
  r.uploadedBytes = blob.size;
  setUpload(r, "uploaded", file.id);
}

async function main() {
  const token = params.get("token");
  if (!token || !call.conversation) { log("open with ?token=JWT&conversation=ID"); return; }
  if (params.get("relay") === "1") $("relay-only").checked = true;
  // Its own queue in memory: this page sends no messages, and leaves the console's IndexedDB queue to the console.
  const client = new CaasClient({ url: location.origin, token, storage: new MemoryQueueStorage() });
  call.me = client.userId;
  $("me").textContent = call.me ?? "";
  $("conversation").textContent = call.conversation;
  const guard = (f) => (e) => Promise.resolve(f(e)).catch((err) => log(problem(err)));
  client.on("callRinging", guard(onRinging));
  client.on("callAccepted", guard(onAccepted));
  client.on("signal", guard(onSignal));
  // One to one: the other side leaving ends it here too.
  client.on("participantLeft", guard((e) => { e = payloadOf(e); if (e.call_id === call.id && e.user_id === call.peer) return hangup(); }));
  client.on("callDeclined", guard((e) => { e = payloadOf(e); if (e.call_id === call.id) reset(); }));
  client.on("callEnded", guard((e) => { e = payloadOf(e); call.ended = e; if (e.call_id === call.id) reset(); setState("call-state", "ended"); }));
  client.on("recordingConsentRequested", guard(onConsentRequested));
  client.on("recordingConsented", guard(onConsented));
  client.on("recordingStarted", guard(onRecordingStarted));
  client.on("recordingStopped", guard(onRecordingStopped));
  client.on("recordingDeclined", guard(onRecordingDeclined));
  // The SDK reconnects by itself (call events keep coming on the new connection); closed: disconnected.
  client.on("state", (e) => setState("status", e.state === "closed" ? "disconnected" : e.state));
  call.client = client;
  await client.connect();
  $("call").disabled = false;
  await findOngoing();
  // start=1 (the console's Call button): call at once.
  if (params.get("start") === "1" && !call.id && !call.ongoing) await startCall();
}

$("call").onclick = () => startCall().catch((e) => log(problem(e)));
$("accept").onclick = () => accept().catch((e) => log(problem(e)));
$("decline").onclick = () => decline().catch((e) => log(problem(e)));
$("hangup").onclick = () => hangup().catch((e) => log(problem(e)));
$("join").onclick = () => join().catch((e) => log(problem(e)));
$("record").onclick = () => record().catch((e) => log(problem(e)));
$("allow").onclick = () => consent(true).catch((e) => log(problem(e)));
$("refuse").onclick = () => consent(false).catch((e) => log(problem(e)));
main().catch((e) => log(problem(e)));
