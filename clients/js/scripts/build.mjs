// Builds dist/esm (ES modules) and dist/cjs (CommonJS), each with its type declarations, with the pinned tsc; and
// dist/browser/caas-client.js, one ES module with @microsoft/signalr inside, for a page without a bundler (esbuild).
// The node's /console page has its own committed copy (minified): `npm run bundle-console` (scripts/console-bundle.mjs).
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
rmSync(join(root, "dist"), { recursive: true, force: true });
for (const config of ["tsconfig.json", "tsconfig.cjs.json"]) {
  execFileSync(process.execPath, [tsc, "-p", join(root, config)], { stdio: "inherit", cwd: root });
}
// The package is "type": "module"; the CommonJS half says so for itself.
writeFileSync(join(root, "dist/cjs/package.json"), JSON.stringify({ type: "commonjs" }) + "\n");
const esbuild = createRequire(import.meta.url)("esbuild");
await esbuild.build({
  entryPoints: [join(root, "src/index.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  sourcemap: true,
  outfile: join(root, "dist/browser/caas-client.js"),
  logLevel: "warning",
});
console.log("built dist/esm, dist/cjs and dist/browser");
