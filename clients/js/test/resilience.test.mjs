// Reconnects against a real node: a network cut in the middle of a burst (through a proxy whose sockets are dropped)
// and a node killed and restarted in the middle of a burst. The receiving app must see every message once, in order,
// and the sender's queue must report every message persisted once, with the same message_id on every retry.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { CaasClient } from "../dist/esm/index.js";
import { CaasNode, DropProxy, waitFor } from "./node.mjs";

let node;
const clients = [];
const proxies = [];
const reconnect = { initialDelayMs: 100, maxDelayMs: 2000 };

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

function client(user, url = node.url) {
  const c = new CaasClient({ url, token: node.token(user), reconnect });
  clients.push(c);
  return c;
}

/** Records what the app sees of one room, and fails on a duplicate or a message out of order at once. */
function recorder(c, conversationId) {
  const seen = [];
  const states = [];
  const resumed = [];
  c.on("message", (m) => {
    if (m.conversation_id === conversationId) seen.push(m.seq);
  });
  c.on("state", (s) => states.push(s.state));
  c.on("resumed", (r) => resumed.push(r));
  return { seen, states, resumed };
}

function assertOnceInOrder(seen, n, who) {
  assert.equal(seen.length, n, `${who} saw ${seen.length} messages, expected ${n}`);
  assert.deepEqual(seen, Array.from({ length: n }, (_, i) => i + 1), `${who} saw every message once, in order`);
}

async function burst(sender, conversationId, n) {
  return Promise.all(Array.from({ length: n }, (_, i) => sender.send(conversationId, `burst ${i + 1}`, { messageId: `${conversationId}-m${i + 1}` })));
}

test("a socket dropped mid-burst: the receiver sees every message once, in order; the sender's queue retries", { timeout: 600_000 }, async (t) => {
  const receiverProxy = await new DropProxy(node.port).listen();
  const senderProxy = await new DropProxy(node.port).listen();
  proxies.push(receiverProxy, senderProxy);
  const alice = client("alice", receiverProxy.url);
  const bob = client("bob", senderProxy.url);
  await Promise.all([alice.connect(), bob.connect()]);
  const room = await bob.rest.createConversation({ type: "group", title: "Drop", members: ["alice"] });
  await alice.joinRoom(room.id);
  const a = recorder(alice, room.id);
  const n = 300;

  const sent = burst(bob, room.id, n);
  await waitFor(() => a.seen.length >= 60, "alice to have 60 messages");
  const cut = receiverProxy.drop() + senderProxy.drop();
  t.diagnostic(`cut after alice had ${a.seen.length} of ${n} messages`);
  assert.ok(cut > 0, "the proxies held sockets to cut");
  // A second cut while the receiver is catching up.
  await waitFor(() => a.states.includes("reconnecting"), "alice to notice the cut");
  await waitFor(() => a.states.at(-1) === "connected", "alice to reconnect");
  receiverProxy.drop();

  const outcomes = await sent;
  assert.deepEqual(outcomes.map((o) => o.status), Array(n).fill("persisted"), "every send persisted");
  assert.deepEqual(outcomes.map((o) => o.seq), Array.from({ length: n }, (_, i) => i + 1), "in queue order, each once");
  await waitFor(() => a.seen.length >= n, `alice to have all ${n} messages`);
  await waitFor(() => alice.state === "connected" && a.resumed.length >= 1, "alice to have resumed");
  assert.ok(a.states.filter((s) => s === "reconnecting").length >= 2, "alice reconnected after each cut");
  assertOnceInOrder(a.seen, n, "alice");
  assert.ok(a.resumed.every((r) => r.conversation_id === room.id));
  // The server offers Resume (Hello's features): the rooms come back through it, not through the history route.
  assert.ok(a.resumed.some((r) => r.via === "resume"), JSON.stringify(a.resumed));
  t.diagnostic(`bob made ${bob.sendInvocations} SendMessage calls for ${n} messages (retries with the same message_id)`);

  const history = [];
  for (let page = await bob.rest.listMessages(room.id, { after_seq: 0, limit: 200 }); ; ) {
    history.push(...page.items);
    if (!page.next_cursor) break;
    page = await bob.rest.listMessages(room.id, { cursor: page.next_cursor, limit: 200 });
  }
  assert.equal(history.length, n, "the server holds each message once");
  assert.equal(new Set(history.map((m) => m.message_id)).size, n);
});

test("a node killed and restarted mid-burst: the receiver sees every message once, in order", { timeout: 600_000 }, async (t) => {
  const alice = client("alice");
  const bob = client("bob");
  await Promise.all([alice.connect(), bob.connect()]);
  const room = await bob.rest.createConversation({ type: "group", title: "Restart", members: ["alice"] });
  await alice.joinRoom(room.id);
  const a = recorder(alice, room.id);
  const b = recorder(bob, room.id);
  const n = 200;

  const sent = burst(bob, room.id, n);
  await waitFor(() => a.seen.length >= 40, "alice to have 40 messages");
  await node.kill();
  t.diagnostic(`killed after alice had ${a.seen.length} of ${n} messages`);
  await waitFor(() => a.states.includes("reconnecting") && b.states.includes("reconnecting"), "both clients to notice");
  await node.start();

  const outcomes = await sent;
  assert.deepEqual(outcomes.map((o) => o.status), Array(n).fill("persisted"), "every send persisted");
  assert.deepEqual(outcomes.map((o) => o.seq), Array.from({ length: n }, (_, i) => i + 1), "in queue order, each once");
  await waitFor(() => a.seen.length >= n, `alice to have all ${n} messages`);
  assertOnceInOrder(a.seen, n, "alice");
  assert.ok(a.resumed.some((r) => r.via === "history" || r.via === "resume"), "alice resumed after the restart");
  const tail = await node.rest("alice", "GET", `/v1/messages/conversations/${room.id}?after_seq=${n - 1}`);
  assert.deepEqual(tail.items.map((m) => m.seq), [n], "nothing after the last message");
});

test("edits and reactions made while the network was down arrive after the reconnect through Resume, once each", { timeout: 300_000 }, async () => {
  const proxy = await new DropProxy(node.port).listen();
  proxies.push(proxy);
  const ivy = client("ivy");
  const jon = client("jon", proxy.url);
  await Promise.all([ivy.connect(), jon.connect()]);
  const room = await ivy.rest.createConversation({ type: "group", title: "SDK durable replay", members: ["jon"] });
  await Promise.all([ivy.joinRoom(room.id), jon.joinRoom(room.id)]);
  const edits = [];
  const reactions = [];
  const resumed = [];
  const seen = [];
  jon.on("messageEdited", (e) => edits.push(e));
  jon.on("reactionChanged", (e) => reactions.push(e));
  jon.on("resumed", (r) => resumed.push(r));
  jon.on("message", (m) => seen.push(m.seq));
  await ivy.send(room.id, "first");
  await waitFor(() => seen.includes(1), "jon's first message");

  proxy.refusing = true;
  assert.ok(proxy.drop() > 0, "jon's socket went through the proxy");
  await waitFor(() => jon.state !== "connected", "jon to notice the cut");
  await ivy.editMessage(room.id, 1, "first, edited");
  await ivy.react(room.id, 1, "👍");
  await ivy.send(room.id, "second");
  assert.equal(edits.length + reactions.length, 0, "nothing reached jon while the network was down");

  proxy.refusing = false;
  await waitFor(() => resumed.some((r) => r.conversation_id === room.id) && seen.includes(2) && edits.length && reactions.length,
    "jon to resume with the edit, the reaction and the second message");
  assert.equal(resumed.find((r) => r.conversation_id === room.id).via, "resume");
  await ivy.send(room.id, "third");
  await waitFor(() => seen.includes(3), "jon's live message after the resume");
  assert.deepEqual(seen, [1, 2, 3]);
  assert.deepEqual(edits.map((e) => [e.seq, e.content.text]), [[1, "first, edited"]]);
  assert.deepEqual(reactions.map((r) => [r.seq, r.reaction, r.added]), [[1, "👍", true]]);
});
