// The CommonJS build loads with require() and offers the same API as the ES module build.
const { test } = require("node:test");
const assert = require("node:assert/strict");

test("the CommonJS build exports the client, the storages and the errors", async () => {
  const cjs = require("../dist/cjs/index.js");
  const esm = await import("../dist/esm/index.js");
  for (const name of ["CaasClient", "RestClient", "MemoryQueueStorage", "IndexedDbQueueStorage", "CaasError", "decodeToken", "newMessageId"]) {
    assert.equal(typeof cjs[name], "function", `${name} in the CommonJS build`);
    assert.equal(typeof esm[name], "function", `${name} in the ES module build`);
  }
  // The package's own name resolves to each build by the way it is loaded.
  assert.equal(require("@caas/client").CaasClient, cjs.CaasClient);
  assert.equal((await import("@caas/client")).CaasClient, esm.CaasClient);
  const e = new cjs.CaasError("persist_timeout", "x");
  assert.equal(e.transient, true);
  assert.equal(new cjs.CaasError("not_found", "x").transient, false);
  const claims = cjs.decodeToken(`x.${Buffer.from(JSON.stringify({ sub: "ü", tenant_id: "t", exp: 5 })).toString("base64url")}.y`);
  assert.deepEqual(claims, { sub: "ü", tenant_id: "t", exp: 5 });
});
