// A minimal one-to-one WebRTC call over CAAS: ICE servers (TURN REST credentials) from the hub's GetIceServers,
// the call's lifecycle and the SDP/ICE exchange only through the hub (StartCall, AcceptCall, DeclineCall, SendSignal,
// LeaveCall; events callRinging, callAccepted, signal, participantLeft, callEnded). Open
// /console/call.html?token=JWT&conversation=ID[&relay=1]. window.caasCall exposes the state (for tests and debugging).
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const call = { hub: null, me: null, conversation: params.get("conversation"), id: null, peer: null, pc: null,
  local: null, pending: [], ended: null, iceServers: [] };
window.caasCall = call;

function log(text) { $("log").textContent = text; }
function setState(id, text) { $(id).textContent = text; $(id).dataset.state = text; }
const payloadOf = (e) => (typeof e === "string" ? JSON.parse(e) : e);

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + (4 - part.length % 4) % 4, "=")));
  } catch { return {}; }
}

async function invoke(method, arg) {
  const result = arg === undefined ? await call.hub.invoke(method) : await call.hub.invoke(method, arg);
  if (!result.success) throw new Error(`${method}: ${result.error.code}: ${result.error.message}`);
  return result;
}

// The node hands out only TURN servers its health check found working: ask again (bounded) until there is one.
async function iceServers() {
  for (let attempt = 0; attempt < 120; attempt++) {
    try {
      const result = await invoke("GetIceServers");
      if (result.ice_servers.length) return result.ice_servers;
      log(result.warning || "no ICE server yet");
    } catch (e) {
      log(e.message); // e.g. rate_limited: ask again
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
    if (e.candidate && call.peer) signal("ice", e.candidate.toJSON()).catch((err) => log(err.message));
  };
  pc.oniceconnectionstatechange = () => setState("ice-state", pc.iceConnectionState);
  pc.onconnectionstatechange = () => { if (pc.connectionState === "connected") setState("call-state", "connected"); };
  pc.ontrack = (e) => { $("remote").srcObject = e.streams[0]; };
  call.pc = pc;
  return pc;
}

const signal = (kind, payload) => invoke("SendSignal", { call_id: call.id, to_user_id: call.peer, kind, payload });

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
  const started = await invoke("StartCall", { conversation_id: call.conversation, media: "video" });
  call.id = started.call_id;
  call.ended = null;
  setState("call-state", "ringing");
  $("call").disabled = true;
  $("hangup").disabled = false;
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
  await newPeerConnection(); // before AcceptCall: the offer may follow its answer at once
  await invoke("AcceptCall", { call_id: call.id });
  setState("call-state", "connecting");
  $("call").disabled = true;
  $("hangup").disabled = false;
}

async function decline() {
  $("incoming").hidden = true;
  await invoke("DeclineCall", { call_id: call.id });
  reset();
}

async function hangup() {
  const id = call.id;
  reset();
  if (id) await invoke("LeaveCall", { call_id: id });
}

function reset() {
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

async function main() {
  const token = params.get("token");
  if (!token || !call.conversation) { log("open with ?token=JWT&conversation=ID"); return; }
  if (params.get("relay") === "1") $("relay-only").checked = true;
  call.me = claims(token).sub;
  $("me").textContent = call.me ?? "";
  $("conversation").textContent = call.conversation;
  const hub = new signalR.HubConnectionBuilder()
    .withUrl("/hubs/chat", { accessTokenFactory: () => token, transport: signalR.HttpTransportType.WebSockets, skipNegotiation: true })
    .withAutomaticReconnect()
    .build();
  const guard = (f) => (e) => Promise.resolve(f(e)).catch((err) => log(err.message));
  hub.on("callRinging", guard(onRinging));
  hub.on("callAccepted", guard(onAccepted));
  hub.on("signal", guard(onSignal));
  // One to one: the other side leaving ends it here too.
  hub.on("participantLeft", guard((e) => { e = payloadOf(e); if (e.call_id === call.id && e.user_id === call.peer) return hangup(); }));
  hub.on("callDeclined", guard((e) => { e = payloadOf(e); if (e.call_id === call.id) reset(); }));
  hub.on("callEnded", guard((e) => { e = payloadOf(e); call.ended = e; if (e.call_id === call.id) reset(); setState("call-state", "ended"); }));
  hub.onclose(() => setState("status", "disconnected"));
  call.hub = hub;
  await hub.start();
  setState("status", "connected");
  $("call").disabled = false;
}

$("call").onclick = () => startCall().catch((e) => log(e.message));
$("accept").onclick = () => accept().catch((e) => log(e.message));
$("decline").onclick = () => decline().catch((e) => log(e.message));
$("hangup").onclick = () => hangup().catch((e) => log(e.message));
main().catch((e) => log(e.message));
