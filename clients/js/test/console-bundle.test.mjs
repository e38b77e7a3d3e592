// The console's committed SDK bundle (src/Caas.Web/wwwroot/console/lib/caas-client.js) is what the SDK's source builds
// now: rebuilt in memory and compared byte for byte. Needs no node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { consoleBundle, writeConsoleBundle } from "../scripts/console-bundle.mjs";

test("the console's committed SDK bundle is up to date with the SDK's source", async () => {
  const dir = mkdtempSync(join(tmpdir(), "caas-console-bundle-"));
  try {
    const fresh = readFileSync(await writeConsoleBundle(join(dir, "caas-client.js")), "utf8");
    const fix = "run `npm run bundle-console` in clients/js and commit src/Caas.Web/wwwroot/console/lib/caas-client.js";
    assert.ok(existsSync(consoleBundle), `${consoleBundle} is missing: ${fix}`);
    const committed = readFileSync(consoleBundle, "utf8");
    assert.ok(committed === fresh, `the console's SDK bundle is stale (${committed.length} bytes committed, ${fresh.length} built from the source): ${fix}`);
    assert.match(fresh, /HubConnectionBuilder|withUrl/, "the bundle carries the SignalR client");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
