// The CAAS browser console: signs in with a dev token, lists and creates conversations over REST, and chats live
// over the SignalR hub (@microsoft/signalr, served by the node). Kept dependency-free apart from the SignalR client.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: null, me: null, hub: null, room: null, typingTimers: new Map(), lastTypingSent: 0, ringing: null };

function log(text) { $("log").textContent = text; }

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + (4 - part.length % 4) % 4, "=")));
  } catch { return {}; }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + state.token, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(`${json?.code ?? response.status}: ${json?.detail ?? ""}`);
  return json;
}

function setStatus(text) { $("status").textContent = text; $("status").dataset.state = text; }

async function connect(token) {
  state.token = token;
  state.me = claims(token).sub;
  $("me").textContent = state.me ? `${state.me} @ ${claims(token).tenant_id}` : "";
  if (state.hub) await state.hub.stop();
  const hub = new signalR.HubConnectionBuilder()
    .withUrl("/hubs/chat", { accessTokenFactory: () => state.token, transport: signalR.HttpTransportType.WebSockets, skipNegotiation: true })
    .withAutomaticReconnect()
    .build();
  hub.on("newMessage", onMessage);
  hub.on("typing", (e) => showTyping(e.user_id));
  // Receipts are the others' (one's own read of a later message is no receipt for one's earlier ones).
  hub.on("readReceipt", (e) => { if (e.user_id !== state.me) markReceipt(e.seq, `read by ${e.user_id}`, "read"); });
  hub.on("delivered", (e) => { if (e.user_id !== state.me) markReceipt(e.seq, `delivered to ${e.user_id}`, "delivered"); });
  hub.on("presenceChanged", (e) => setPresence(e.user_id, e.status));
  hub.on("memberJoined", (e) => setPresence(e.user_id, "online"));
  hub.on("roomActivity", (e) => {
    e.joined.forEach((u) => setPresence(u, "online"));
    e.presence.forEach((p) => setPresence(p.user_id, p.status));
  });
  hub.on("userKicked", (e) => { if (e.user_id === state.me) leaveView("You were removed from the room."); });
  hub.on("userBanned", (e) => { if (e.user_id === state.me) leaveView("You were banned from the room."); });
  // Calls: ringing shows on whatever room is open; Answer opens the call panel on that call (call.html in a frame).
  hub.on("callRinging", (e) => ringing(e));
  for (const name of ["callAnsweredElsewhere", "callEnded", "callMissed", "callDeclined"])
    hub.on(name, (e) => { if (state.ringing?.call_id === e.call_id) clearRinging(); });
  hub.on("sessionExpired", () => setStatus("expired"));
  hub.onclose(() => setStatus("disconnected"));
  hub.onreconnecting(() => setStatus("reconnecting"));
  hub.onreconnected(async () => { setStatus("connected"); if (state.room) await join(state.room.id, true); });
  state.hub = hub;
  await hub.start();
  setStatus("connected");
  await refresh();
}

async function refresh() {
  const page = await api("GET", "/v1/conversations?limit=100");
  const list = $("conversations");
  list.replaceChildren(...page.items.map((c) => {
    const li = document.createElement("li");
    li.textContent = c.title || c.id;
    li.dataset.id = c.id;
    li.className = state.room?.id === c.id ? "active" : "";
    li.onclick = () => join(c.id).catch((e) => log(e.message));
    return li;
  }));
}

async function join(id, again = false, title = null) {
  if (state.room && state.room.id !== id) await state.hub.invoke("LeaveRoom", { conversation_id: state.room.id });
  const result = await state.hub.invoke("JoinRoom", { conversation_id: id });
  if (!result.success) { log(`${result.error.code}: ${result.error.message}`); return; }
  const fresh = !again || !state.room;
  state.room = { id, lastSeq: fresh ? 0 : state.room.lastSeq };
  $("room-title").textContent = title || (document.querySelector(`#conversations li[data-id="${id}"]`)?.textContent) || id;
  for (const li of document.querySelectorAll("#conversations li")) li.className = li.dataset.id === id ? "active" : "";
  if (fresh) $("messages").replaceChildren();
  $("presence").replaceChildren();
  for (const m of result.members) if (m.user_id !== state.me) await loadPresence(m.user_id);
  // Catch up from the last message seen (all of it when the room is new to this page), then go on live.
  const history = await state.hub.invoke("GetHistory", { conversation_id: id, after_seq: state.room.lastSeq, limit: 200 });
  if (history.success) for (const m of history.items) onMessage(m);
  $("message").disabled = $("send").disabled = $("call").disabled = false;
  $("message").focus();
}

// ---- calls -------------------------------------------------------------------------------------------------------
// The call itself (WebRTC, ICE servers from the node, signaling through the hub, recording with consent) is the call
// page, /console/call.html, shown in a frame here; the token goes in its fragment, never to a server log.
function openCall(conversationId, callId = null) {
  const fragment = new URLSearchParams({ token: state.token, conversation: conversationId, ...(callId ? { call: callId } : { start: "1" }) });
  $("call-frame").src = `call.html#${fragment}`;
  $("call-panel").hidden = false;
  $("call-panel").dataset.conversation = conversationId;
  $("call-panel").dataset.call = callId ?? "";
}

function closeCall() {
  $("call-frame").src = "about:blank"; // the page's hang-up on unload is not awaited: leaving the call ends it for this user
  $("call-panel").hidden = true;
}

function ringing(e) {
  state.ringing = e;
  $("incoming-text").textContent = `${e.from_user_id} is calling (${e.media})` +
    (e.conversation_id === state.room?.id ? "" : ` in ${document.querySelector(`#conversations li[data-id="${CSS.escape(e.conversation_id)}"]`)?.textContent ?? e.conversation_id}`);
  $("incoming").hidden = false;
}

function clearRinging() {
  state.ringing = null;
  $("incoming").hidden = true;
}

/** A call's summary message (content type "call") as one line. */
function callLine(c) {
  const minutes = Math.floor((c.duration_seconds ?? 0) / 60), seconds = Math.round((c.duration_seconds ?? 0) % 60);
  const how = { completed: "", missed: " — missed", declined: " — declined", busy: " — busy", no_answer: " — no answer", ended: ` — ended by ${c.ended_by}` }[c.reason] ?? ` — ${c.reason}`;
  return `📞 ${c.media} call${how}, ${minutes}:${String(seconds).padStart(2, "0")}, ${(c.participants ?? []).join(", ") || "nobody answered"}`;
}

function leaveView(reason) {
  state.room = null;
  $("room-title").textContent = reason;
  $("message").disabled = $("send").disabled = $("call").disabled = true;
}

function onMessage(m) {
  if (!state.room || m.conversation_id !== state.room.id || m.seq <= state.room.lastSeq) return;
  state.room.lastSeq = m.seq;
  const li = document.createElement("li");
  li.dataset.seq = m.seq;
  li.dataset.sender = m.sender_id;
  const seq = Object.assign(document.createElement("span"), { className: "seq", textContent: `#${m.seq}` });
  const who = Object.assign(document.createElement("span"), { className: "who", textContent: m.sender_id });
  const isCall = m.content?.type === "call";
  if (isCall) li.dataset.kind = "call";
  const text = Object.assign(document.createElement("span"), {
    className: "text", textContent: m.deleted ? "(deleted)" : isCall ? callLine(m.content) : m.content?.text ?? "",
  });
  const receipt = Object.assign(document.createElement("span"), { className: "receipt" });
  li.append(seq, who, text, receipt);
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  clearTyping(m.sender_id);
  if (m.sender_id !== state.me) {
    state.hub.invoke("MarkDelivered", { conversation_id: m.conversation_id, seq: m.seq }).catch(() => {});
    if (document.visibilityState === "visible")
      state.hub.invoke("MarkRead", { conversation_id: m.conversation_id, seq: m.seq }).catch(() => {});
  }
}

function markReceipt(seq, text, kind) {
  // A receipt for seq N covers every earlier message too; "read" outranks "delivered".
  for (const li of document.querySelectorAll("#messages li")) {
    if (Number(li.dataset.seq) > seq || li.dataset.sender !== state.me) continue;
    const r = li.querySelector(".receipt");
    if (kind === "delivered" && r.dataset.kind === "read") continue;
    r.textContent = text;
    r.dataset.kind = kind;
  }
}

function showTyping(user) {
  clearTimeout(state.typingTimers.get(user));
  state.typingTimers.set(user, setTimeout(() => clearTyping(user), 4000));
  renderTyping();
}

function clearTyping(user) {
  clearTimeout(state.typingTimers.get(user));
  state.typingTimers.delete(user);
  renderTyping();
}

function renderTyping() {
  const users = [...state.typingTimers.keys()];
  $("typing").textContent = users.length ? `${users.join(", ")} ${users.length > 1 ? "are" : "is"} typing…` : "";
}

async function loadPresence(user) {
  const p = await state.hub.invoke("GetPresence", { user_id: user });
  if (p.success) setPresence(user, p.status);
}

function setPresence(user, status) {
  if (user === state.me) return;
  let li = document.querySelector(`#presence li[data-user="${CSS.escape(user)}"]`);
  if (!li) { li = document.createElement("li"); li.dataset.user = user; $("presence").append(li); }
  li.dataset.status = status;
  li.textContent = `${user} — ${status}`;
}

$("signin").onsubmit = (e) => { e.preventDefault(); connect($("token").value.trim()).catch((err) => { setStatus("disconnected"); log(err.message); }); };
$("refresh").onclick = () => refresh().catch((e) => log(e.message));
$("call").onclick = () => { if (state.room) openCall(state.room.id); };
$("answer").onclick = () => { if (state.ringing) openCall(state.ringing.conversation_id, state.ringing.call_id); clearRinging(); };
$("dismiss").onclick = () => clearRinging();
$("close-call").onclick = () => closeCall();
$("create").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const members = $("new-members").value.split(",").map((s) => s.trim()).filter(Boolean);
    const c = await api("POST", "/v1/conversations", { type: "group", title: $("new-title").value || null, members });
    $("new-title").value = $("new-members").value = "";
    await refresh();
    await join(c.id, false, c.title);
  } catch (err) { log(err.message); }
};
$("composer").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("message").value;
  if (!text.trim() || !state.room) return;
  $("message").value = "";
  // The id is chosen here, so a retry after persist_timeout cannot post twice.
  const id = "m_" + crypto.randomUUID().replace(/-/g, "");
  let result = await state.hub.invoke("SendMessage", { conversation_id: state.room.id, content: { type: "text", text }, message_id: id });
  if (!result.success && result.error.code === "persist_timeout")
    result = await state.hub.invoke("SendMessage", { conversation_id: state.room.id, content: { type: "text", text }, message_id: id });
  if (!result.success) log(`${result.error.code}: ${result.error.message}`);
};
$("message").oninput = () => {
  if (!state.room || Date.now() - state.lastTypingSent < 2000) return;
  state.lastTypingSent = Date.now();
  state.hub.invoke("Typing", { conversation_id: state.room.id }).catch(() => {});
};

// ?token=… signs in at once (handy with `caas dev-token`); the token is then dropped from the address bar.
const fromQuery = new URLSearchParams(location.search).get("token");
if (fromQuery) {
  history.replaceState(null, "", location.pathname);
  $("token").value = fromQuery;
  connect(fromQuery).catch((err) => { setStatus("disconnected"); log(err.message); });
}
