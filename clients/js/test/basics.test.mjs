// The SDK against a real node: REST and hub calls, events, ordering, typing throttle, unread counts, failures.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { CaasClient, CaasError, PROTOCOL_VERSION } from "../dist/esm/index.js";
import { CaasNode, waitFor } from "./node.mjs";

let node;
const clients = [];
const client = (user, options = {}) => {
  const c = new CaasClient({ url: node.url, token: node.token(user), ...options });
  clients.push(c);
  return c;
};

before(async () => {
  process.env.CAAS_MEDIA_CHUNK_MB ??= "1"; // uploads of a few chunks stay small
  node = new CaasNode();
  await node.start();
  await node.liftLimits();
});

after(async () => {
  for (const c of clients) await c.close();
  await node?.dispose();
});

test("messages, edits, reactions, deletes and typing reach the other member, in order, once", { timeout: 300_000 }, async () => {
  const alice = client("alice");
  const bob = client("bob");
  await Promise.all([alice.connect(), bob.connect()]);
  const room = await alice.rest.createConversation({ type: "group", title: "SDK basics", members: ["bob"] });
  await alice.joinRoom(room.id);
  await bob.joinRoom(room.id);

  const got = [];
  const edits = [];
  const reactions = [];
  const deletes = [];
  const typing = [];
  alice.on("message", (m) => got.push(m));
  alice.on("messageEdited", (e) => edits.push(e));
  alice.on("reactionChanged", (e) => reactions.push(e));
  alice.on("messageDeleted", (e) => deletes.push(e));
  alice.on("typing", (e) => typing.push(e));

  assert.equal(bob.typing(room.id), true);
  assert.equal(bob.typing(room.id), false, "a second Typing within the window is not sent");
  await waitFor(() => typing.length >= 1, "alice to see bob typing");
  assert.equal(typing[0].user_id, "bob");

  const outcomes = await Promise.all([1, 2, 3, 4, 5].map((i) => bob.send(room.id, `hello ${i}`)));
  assert.deepEqual(outcomes.map((o) => o.status), Array(5).fill("persisted"));
  assert.deepEqual(outcomes.map((o) => o.seq), [1, 2, 3, 4, 5], "queued sends keep their order");
  await waitFor(() => got.length >= 5, "alice to get 5 messages");
  assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5]);
  assert.deepEqual(got.map((m) => m.content.text), ["hello 1", "hello 2", "hello 3", "hello 4", "hello 5"]);

  const edited = await bob.editMessage(room.id, 2, "hello two");
  assert.equal(edited.content.text, "hello two");
  await bob.react(room.id, 3, "👍");
  await bob.deleteMessage(room.id, 4);
  await waitFor(() => edits.length && reactions.length && deletes.length, "edit, reaction and delete events");
  assert.equal(edits[0].seq, 2);
  assert.equal(edits[0].content.text, "hello two");
  assert.deepEqual([reactions[0].seq, reactions[0].reaction, reactions[0].added], [3, "👍", true]);
  assert.equal(deletes[0].seq, 4);

  const history = await alice.rest.listMessages(room.id, { after_seq: 0 });
  assert.deepEqual(history.items.map((m) => m.seq), [1, 2, 3, 4, 5]);
  assert.equal(got.length, 5, "no message twice");
});

test("unread counts follow new messages and read markers, also from the user's other device", { timeout: 300_000 }, async () => {
  const alice = client("alice");
  const alice2 = client("alice");
  const bob = client("bob");
  await Promise.all([alice.connect(), alice2.connect(), bob.connect()]);
  const room = await bob.rest.createConversation({ type: "group", title: "Unread", members: ["alice"] });
  await Promise.all([alice.joinRoom(room.id), alice2.joinRoom(room.id), bob.joinRoom(room.id)]);
  for (let i = 1; i <= 3; i++) assert.equal((await bob.send(room.id, `u${i}`)).status, "persisted");
  await waitFor(() => alice.unreadCount(room.id) === 3 && alice2.unreadCount(room.id) === 3, "3 unread on both devices");
  assert.equal(bob.unreadCount(room.id), 0, "one's own messages are not unread");

  await alice.markRead(room.id, 2);
  assert.equal(alice.unreadCount(room.id), 1);
  await waitFor(() => alice2.unreadCount(room.id) === 1, "the other device to follow the read receipt");
  const listed = await waitFor(async () => {
    const page = await alice.rest.listConversations();
    const c = page.items.find((x) => x.id === room.id);
    return c?.unread_count === 1 ? c : null;
  }, "the server's unread_count to agree");
  assert.equal(listed.unread_count, 1);
  await alice.markRead(room.id);
  assert.equal(alice.unreadCount(room.id), 0);
});

test("a rejected send is reported failed, not retried; hub and REST errors carry their code", { timeout: 300_000 }, async () => {
  const carol = client("carol");
  await carol.connect();
  const failed = [];
  carol.on("messageFailed", (o) => failed.push(o));
  const outcome = await carol.send("no-such-room", "hello?");
  assert.equal(outcome.status, "failed");
  assert.equal(failed.length, 1);
  assert.equal(failed[0].message_id, outcome.message_id);
  assert.ok(["not_found", "forbidden"].includes(outcome.error.code), outcome.error.code);
  assert.equal(carol.sendInvocations, 1, "a rejection is not retried");
  assert.equal((await carol.outbox()).length, 0);

  await assert.rejects(carol.joinRoom("no-such-room"), (e) => e instanceof CaasError && e.code === "not_found");
  await assert.rejects(carol.rest.getConversation("no-such-room"), (e) => e instanceof CaasError && e.code === "not_found" && e.status === 404);
});

test("the same message_id twice is persisted once", { timeout: 300_000 }, async () => {
  const dave = client("dave");
  await dave.connect();
  const room = await dave.rest.createConversation({ type: "group", title: "Idempotent" });
  const first = await dave.send(room.id, "once", { messageId: "sdk-idem-1" });
  const again = await dave.send(room.id, "once", { messageId: "sdk-idem-1" });
  assert.equal(first.status, "persisted");
  assert.equal(again.status, "persisted");
  assert.equal(again.seq, first.seq);
  assert.equal(again.repeat, true);
  const history = await dave.rest.listMessages(room.id, { after_seq: 0 });
  assert.equal(history.items.length, 1);
});

test("a room's batched roomActivity comes as it is and split into memberJoined, memberLeft and presenceChanged", { timeout: 300_000 }, async () => {
  const erin = client("erin");
  const frank = client("frank");
  await Promise.all([erin.connect(), frank.connect()]);
  const room = await erin.rest.createConversation({ type: "group", title: "Activity", members: ["frank"] });
  await erin.joinRoom(room.id);
  const seen = [];
  for (const name of ["roomActivity", "memberJoined", "memberLeft", "presenceChanged"]) erin.on(name, (e) => seen.push({ name, e }));

  await frank.joinRoom(room.id);
  const batch = await waitFor(() => seen.find((x) => x.name === "roomActivity" && x.e.joined.includes("frank"))?.e, "erin's roomActivity with frank");
  assert.equal(batch.conversation_id, room.id);
  assert.ok(Array.isArray(batch.left) && Array.isArray(batch.presence));
  const joined = seen.find((x) => x.name === "memberJoined" && x.e.user_id === "frank");
  assert.deepEqual(joined?.e, { conversation_id: room.id, user_id: "frank" }, "the join on its own");

  await frank.leaveRoom(room.id);
  await waitFor(() => seen.find((x) => x.name === "memberLeft" && x.e.user_id === "frank" && x.e.conversation_id === room.id), "erin's memberLeft for frank");
  // Every batch's changes came out one by one too, right after it, in its order.
  const batches = seen.filter((x) => x.name === "roomActivity").map((x) => x.e);
  const split = seen.filter((x) => x.name !== "roomActivity");
  const expected = batches.flatMap((b) => [
    ...b.joined.map((u) => ({ name: "memberJoined", e: { conversation_id: b.conversation_id, user_id: u } })),
    ...b.left.map((u) => ({ name: "memberLeft", e: { conversation_id: b.conversation_id, user_id: u } })),
    ...b.presence.map((p) => ({ name: "presenceChanged", e: p })),
  ]);
  assert.deepEqual(split, expected);
});

test("a file through the resumable upload (rest.uploadChunked), then downloaded byte for byte", { timeout: 300_000 }, async () => {
  const gina = client("gina");
  const room = await gina.rest.createConversation({ type: "group", title: "Files" });
  const bytes = new Uint8Array(2_500_000).map((_, i) => (i % 80 === 79 ? 10 : 97 + ((i * 7) % 26))); // text: sniffed text/plain
  const progress = [];
  const file = await gina.rest.uploadChunked(new Blob([bytes]), {
    file_name: "data.txt", content_type: "text/plain", conversation_id: room.id, onProgress: (sent, total) => progress.push([sent, total]),
  });
  assert.equal(file.size, bytes.length);
  assert.equal(file.conversation_id, room.id);
  assert.equal(file.owner_id, "gina");
  assert.equal(progress.length, Math.ceil(bytes.length / (1024 * 1024)), "a chunk of 1 MiB at a time");
  assert.deepEqual(progress.at(-1), [bytes.length, bytes.length]);
  const download = await fetch(`${node.url}/v1/media/download/${file.id}`, { headers: { authorization: `Bearer ${node.token("gina")}` } });
  assert.equal(download.status, 200);
  assert.deepEqual(new Uint8Array(await download.arrayBuffer()), bytes);

  // The steps one by one: a chunk of an upload that is not one's own is not_found; a bad start is validation_failed.
  const started = await gina.rest.startUpload({ file_name: "x.txt", content_type: "text/plain", conversation_id: room.id, size: 3 });
  assert.ok(started.upload_id && started.chunk_size > 0);
  await assert.rejects(client("hank").rest.uploadChunk(started.upload_id, 0, new TextEncoder().encode("abc")), (e) => e instanceof CaasError && e.status === 404);
  assert.equal((await gina.rest.uploadChunk(started.upload_id, 0, new TextEncoder().encode("abc"))).received_bytes, 3);
  assert.equal((await gina.rest.completeUpload(started.upload_id)).size, 3);
  await assert.rejects(gina.rest.startUpload({ file_name: "", content_type: "text/plain", conversation_id: room.id }),
    (e) => e instanceof CaasError && e.code === "validation_failed");
});

test("Hello negotiates the protocol at connect; a client that speaks no version the server has is refused and closed", { timeout: 300_000 }, async () => {
  const gina = client("gina");
  assert.equal(gina.serverInfo, null);
  await gina.connect();
  assert.equal(gina.serverInfo.protocol, PROTOCOL_VERSION);
  assert.equal(gina.serverInfo.server, "caas");
  assert.ok(gina.serverInfo.features.includes("resume"), gina.serverInfo.features.join(","));
  assert.equal(gina.resumeSupported, true);
  assert.ok(gina.serverInfo.limits.max_message_bytes > 0);
  // A newer client offering 2 and 1 gets 1 from this server.
  const hank = client("hank", { protocolVersions: [2, 1] });
  await hank.connect();
  assert.equal(hank.serverInfo.protocol, 1);

  const future = client("ivan", { protocolVersions: [99] });
  const states = [];
  future.on("state", (s) => states.push(s.state));
  await assert.rejects(future.connect(), (e) => e instanceof CaasError && e.code === "unsupported_protocol" && /offered 99/.test(e.message));
  assert.equal(future.state, "closed");
  assert.ok(!states.includes("connected"), states.join(","));
});

test("search: messages with highlights and filters, conversations, people, suggestions and recent searches", { timeout: 300_000 }, async () => {
  const jane = client("jane");
  await jane.connect();
  await jane.rest.updateMe({ display_name: "Jane Searcher" });
  const room = await jane.rest.createConversation({ type: "group", title: "Quarterly Zeppelin Review", members: ["kyle"] });
  await jane.send(room.id, "the zeppelin budget is approved");
  await jane.send(room.id, "lunch at noon");
  // The index is a projection of the journal: searchable within about a second of the acknowledgement.
  // (The membership is the entity's answer, so a new conversation is searchable inside at once: empty, then the hit.)
  const page = await waitFor(async () => {
    const p = await jane.rest.searchMessages("zeppelin", { conversation_id: room.id });
    return p.items.length > 0 && p;
  }, "the message to be searchable", 60_000);
  assert.equal(page.items.length, 1);
  const hit = page.items[0];
  assert.equal(hit.conversation_id, room.id);
  assert.equal(hit.sender_id, "jane");
  assert.equal(hit.seq, 1);
  const [start, end] = hit.highlights[0].ranges[0];
  assert.equal(hit.highlights[0].fragment.slice(start, end).toLowerCase(), "zeppelin");
  assert.equal((await jane.rest.searchMessages("zeppelin", { sender_id: "kyle" })).items.length, 0);

  const conversations = await jane.rest.searchConversations("zeppelin");
  assert.deepEqual(conversations.items.map((c) => c.conversation_id), [room.id]);
  const people = await waitFor(async () => {
    const u = await jane.rest.searchUsers("Searcher");
    return u.items.some((p) => p.user_id === "jane") && u;
  }, "jane to be found by her display name", 60_000);
  assert.equal(people.items.find((p) => p.user_id === "jane").display_name, "Jane Searcher");
  const all = await jane.rest.search("zeppelin");
  assert.equal(all.messages.items.length, 1);
  assert.equal(all.conversations.items.length, 1);
  assert.ok(Array.isArray(all.files.items));
  const suggestions = await jane.rest.searchSuggestions("Quarterly Zep");
  assert.ok(suggestions.items.some((s) => s.kind === "conversation" && s.id === room.id), JSON.stringify(suggestions.items));

  const recent = await jane.rest.recentSearches();
  assert.ok(recent.items.some((r) => r.q === "zeppelin"), JSON.stringify(recent.items));
  assert.ok((await jane.rest.clearRecentSearches()).cleared >= 1);
  assert.equal((await jane.rest.recentSearches()).items.length, 0);
  await assert.rejects(jane.rest.searchMessages(""), (e) => e instanceof CaasError && e.status === 400 && e.code === "validation_failed");
  await assert.rejects(jane.rest.searchMessages("x", { conversation_id: "someone-elses" }), (e) => e instanceof CaasError && e.status === 404);
});
