// The CAAS browser console: signs in with a dev token, lists and creates conversations, and chats live, all through
// the JavaScript client SDK (@caas/client; lib/caas-client.js is its committed browser bundle, @microsoft/signalr
// inside, written by `npm run bundle-console` in clients/js). The SDK keeps the hub connection (reconnect with backoff,
// every joined room rejoined and caught up: each message once, in seq order), the offline send queue (retried with the
// same message_id, kept in IndexedDB across a reload), the typing throttle and the delivered receipts.
// window.caasConsole exposes the state (for tests and debugging).
import { CaasClient, isCallContent } from "./lib/caas-client.js";

const $ = (id) => document.getElementById(id);
const state = { token: null, me: null, client: null, room: null, typingTimers: new Map(), ringing: null };
window.caasConsole = state;

function log(text) { $("log").textContent = text; }
const problem = (e) => (e?.code ? `${e.code}: ${e.message}` : String(e?.message ?? e));

function setStatus(text) { $("status").textContent = text; $("status").dataset.state = text; }

async function connect(token) {
  if (state.client) await state.client.close();
  const client = new CaasClient({ url: location.origin, token });
  state.client = client;
  state.token = token;
  state.me = client.userId;
  $("me").textContent = state.me ? `${state.me} @ ${client.tenantId}` : "";
  leaveView("No room joined");
  // Handlers of this client only: a later sign-in replaces it.
  const on = (name, handler) => client.on(name, (e) => { if (state.client === client) handler(e); });
  // disconnected, connecting, connected, reconnecting (the SDK retries with backoff), expired (the token was refused)
  on("state", (e) => setStatus(e.state === "closed" ? "disconnected" : e.state));
  on("message", onMessage);
  const here = (e) => e.conversation_id === state.room?.id;
  on("typing", (e) => { if (here(e) && e.user_id !== state.me) showTyping(e.user_id); });
  // Receipts are the others' (one's own read of a later message is no receipt for one's earlier ones).
  on("readReceipt", (e) => { if (here(e) && e.user_id !== state.me) markReceipt(e.seq, `read by ${e.user_id}`, "read"); });
  on("delivered", (e) => { if (here(e) && e.user_id !== state.me) markReceipt(e.seq, `delivered to ${e.user_id}`, "delivered"); });
  // The server batches a room's joins, leaves and presence changes (roomActivity); the SDK hands them out one by one.
  on("presenceChanged", (e) => setPresence(e.user_id, e.status));
  on("memberJoined", (e) => { if (here(e)) setPresence(e.user_id, "online"); });
  on("userKicked", (e) => { if (here(e) && e.user_id === state.me) leaveView("You were removed from the room."); });
  on("userBanned", (e) => { if (here(e) && e.user_id === state.me) leaveView("You were banned from the room."); });
  on("memberRemoved", (e) => { if (here(e) && e.user_id === state.me) leaveView("You were removed from the room."); });
  on("roomError", (e) => { if (here(e)) leaveView(`${e.code}: ${e.message}`); });
  // After a reconnect the SDK rejoined the room and delivered what was missed; presence may have changed meanwhile.
  on("resumed", (e) => { if (here(e)) loadMembersPresence().catch((err) => log(problem(err))); });
  on("messageFailed", (o) => log(`not sent: ${problem(o.error)}`));
  on("sessionExpired", () => setStatus("expired"));
  // Calls: ringing shows on whatever room is open; Answer opens the call panel on that call (call.html in a frame).
  on("callRinging", (e) => ringing(e));
  for (const name of ["callAnsweredElsewhere", "callEnded", "callMissed", "callDeclined"])
    on(name, (e) => { if (state.ringing?.call_id === e.call_id) clearRinging(); });
  on("error", (e) => console.warn("caas:", e));
  await client.connect();
  await refresh();
}

async function refresh() {
  const page = await state.client.rest.listConversations({ limit: 100 });
  const list = $("conversations");
  list.replaceChildren(...page.items.map((c) => {
    const li = document.createElement("li");
    li.textContent = c.title || c.id;
    li.dataset.id = c.id;
    li.className = state.room?.id === c.id ? "active" : "";
    li.onclick = () => join(c.id).catch((e) => log(problem(e)));
    return li;
  }));
}

async function join(id, title = null) {
  const client = state.client;
  if (state.room && state.room.id !== id) await client.leaveRoom(state.room.id);
  // A fresh view: the room's history from its first message, then live (the SDK rejoins and catches up after a drop).
  state.room = { id, lastSeq: 0, members: [] };
  $("messages").replaceChildren();
  $("presence").replaceChildren();
  clearAllTyping();
  let joined;
  try {
    joined = await client.joinRoom(id, { afterSeq: 0 });
  } catch (e) {
    leaveView("No room joined");
    throw e;
  }
  if (state.room?.id !== id) return; // another room was opened meanwhile
  state.room.members = joined.members.map((m) => m.user_id);
  $("room-title").textContent = title || (document.querySelector(`#conversations li[data-id="${CSS.escape(id)}"]`)?.textContent) || id;
  for (const li of document.querySelectorAll("#conversations li")) li.className = li.dataset.id === id ? "active" : "";
  $("message").disabled = $("send").disabled = $("call").disabled = false;
  $("message").focus();
  markRead();
  await loadMembersPresence();
}

async function loadMembersPresence() {
  const room = state.room;
  for (const user of room?.members ?? []) {
    if (user === state.me) continue;
    const p = await state.client.getPresence(user).catch(() => null);
    if (p && state.room === room) setPresence(user, p.status);
  }
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
  if (state.room && state.client) state.client.leaveRoom(state.room.id).catch(() => {});
  state.room = null;
  $("room-title").textContent = reason;
  $("message").disabled = $("send").disabled = $("call").disabled = true;
  clearAllTyping();
}

// The SDK delivers each message once, in seq order per room (live, or caught up after a reconnect).
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
    className: "text",
    textContent: m.deleted ? "(deleted)" : isCall ? (isCallContent(m.content) ? callLine(m.content) : "📞 call") : m.content?.text ?? m.content?.caption ?? "",
  });
  const receipt = Object.assign(document.createElement("span"), { className: "receipt" });
  li.append(seq, who, text, receipt);
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  clearTyping(m.sender_id);
  // Delivered receipts: the SDK sends them (cumulative, about once a second). Read: while the page is seen.
  if (m.sender_id !== state.me) markRead();
}

function markRead() {
  const room = state.room;
  if (!room || !room.lastSeq || document.visibilityState !== "visible" || state.client?.state !== "connected") return;
  state.client.markRead(room.id, room.lastSeq).catch(() => {});
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

function clearAllTyping() {
  for (const user of [...state.typingTimers.keys()]) clearTyping(user);
}

function renderTyping() {
  const users = [...state.typingTimers.keys()];
  $("typing").textContent = users.length ? `${users.join(", ")} ${users.length > 1 ? "are" : "is"} typing…` : "";
}

function setPresence(user, status) {
  if (user === state.me || !state.room) return; // the list is the open room's
  let li = document.querySelector(`#presence li[data-user="${CSS.escape(user)}"]`);
  if (!li) { li = document.createElement("li"); li.dataset.user = user; $("presence").append(li); }
  li.dataset.status = status;
  li.textContent = `${user} — ${status}`;
}

$("signin").onsubmit = (e) => { e.preventDefault(); signIn($("token").value.trim()); };
$("refresh").onclick = () => refresh().catch((e) => log(problem(e)));
$("call").onclick = () => { if (state.room) openCall(state.room.id); };
$("answer").onclick = () => { if (state.ringing) openCall(state.ringing.conversation_id, state.ringing.call_id); clearRinging(); };
$("dismiss").onclick = () => clearRinging();
$("close-call").onclick = () => closeCall();
$("create").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const members = $("new-members").value.split(",").map((s) => s.trim()).filter(Boolean);
    const c = await state.client.rest.createConversation({ type: "group", title: $("new-title").value || undefined, members });
    $("new-title").value = $("new-members").value = "";
    await refresh();
    await join(c.id, c.title);
  } catch (err) { log(problem(err)); }
};
$("composer").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("message").value;
  if (!text.trim() || !state.room) return;
  $("message").value = "";
  // Queued (IndexedDB: kept across a reload, one sender among this user's tabs), sent once connected, retried with the
  // same message_id while the outcome is unknown; the message itself shows when it comes back from the room.
  const outcome = await state.client.send(state.room.id, { type: "text", text });
  if (outcome.status === "failed") log(`not sent: ${problem(outcome.error)}`);
};
$("message").oninput = () => { if (state.room) state.client.typing(state.room.id); };
document.addEventListener("visibilitychange", () => markRead());

function signIn(token) {
  connect(token).catch((err) => { setStatus("disconnected"); log(problem(err)); });
}

// ?token=… signs in at once (handy with `caas dev-token`); the token is then dropped from the address bar.
const fromQuery = new URLSearchParams(location.search).get("token");
if (fromQuery) {
  history.replaceState(null, "", location.pathname);
  $("token").value = fromQuery;
  signIn(fromQuery);
}
