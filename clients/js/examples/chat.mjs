// A terminal chat on the SDK: joins (or creates) a conversation, prints every message once and in order (also what
// was missed while the connection was down), and sends each line you type through the offline queue.
//
//   cd clients/js && npm ci && npm run build
//   export CAAS_URL=http://127.0.0.1:5080
//   export CAAS_TOKEN=$(dotnet run --project ../../src/Caas.Node -c Release -- dev-token --tenant acme --user alice)
//   node examples/chat.mjs [conversation_id] [--members bob,carol]
import { createInterface } from "node:readline";
import { CaasClient } from "../dist/esm/index.js";

const url = process.env.CAAS_URL ?? "http://127.0.0.1:5080";
const token = process.env.CAAS_TOKEN;
if (!token) {
  console.error("Set CAAS_TOKEN (see the comment at the top of this file).");
  process.exit(2);
}
const args = process.argv.slice(2);
const membersAt = args.indexOf("--members");
const members = membersAt >= 0 ? args.splice(membersAt, 2)[1].split(",") : [];

const client = new CaasClient({ url, token });
client.on("state", ({ state, error }) => console.error(`[${state}]${error ? ` ${error}` : ""}`));
client.on("message", (m) => console.log(`#${m.seq} ${m.sender_id}: ${m.content?.text ?? "(deleted)"}`));
client.on("messageEdited", (e) => console.log(`#${e.seq} edited: ${e.content?.text}`));
client.on("typing", (e) => console.error(`${e.user_id} is typing…`));
client.on("resumed", (r) => console.error(`[resumed ${r.conversation_id} via ${r.via}: ${r.from_seq} → ${r.to_seq}]`));
client.on("messageFailed", (o) => console.error(`not sent (${o.error.code}): ${o.error.message}`));
client.on("sessionExpired", () => console.error("session expired: get a new token"));

await client.connect();
const conversationId = args[0] ?? (await client.rest.createConversation({ type: "group", title: "SDK example", members })).id;
// The last 20 messages first, then everything live.
const recent = await client.rest.listMessages(conversationId, { limit: 20 });
const from = recent.items.length ? recent.items.at(-1).seq - 1 : 0;
await client.joinRoom(conversationId, { afterSeq: from });
console.error(`in ${conversationId}; type a line to send it, Ctrl-D to leave`);

const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (!line.trim()) return;
  void client.send(conversationId, line);
});
input.on("close", async () => {
  // Wait for the queue to empty before leaving.
  while ((await client.outbox()).length) await new Promise((r) => setTimeout(r, 100));
  await client.close();
});
