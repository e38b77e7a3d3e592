// The SDK's browser bundle for the node's /console page: one minified ES module with @microsoft/signalr inside, built
// from src/ by the pinned esbuild and committed at src/Caas.Web/wwwroot/console/lib/caas-client.js, so a clone serves
// the console with no npm and no download. `npm run bundle-console` writes it; test/console-bundle.test.mjs rebuilds it
// into a temp dir and fails while the committed file differs (the SDK's source changed without a new bundle).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const consoleBundle = join(root, "../../src/Caas.Web/wwwroot/console/lib/caas-client.js");

/** The bundle's text (deterministic: the same source and esbuild give the same bytes). */
export async function buildConsoleBundle() {
  const esbuild = require("esbuild");
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const signalr = JSON.parse(readFileSync(require.resolve("@microsoft/signalr/package.json"), "utf8"));
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: ["src/index.ts"],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    legalComments: "none",
    charset: "utf8",
    write: false,
    outfile: "console-bundle.js",
    banner: {
      js: `/*! ${pkg.name} ${pkg.version} for the CAAS browser console (with @microsoft/signalr ${signalr.version}, MIT). ` +
        "Generated from clients/js/src by `npm run bundle-console` in clients/js: do not edit. */",
    },
    logLevel: "warning",
  });
  return result.outputFiles[0].text;
}

/** Writes the committed bundle; answers its path. */
export async function writeConsoleBundle(path = consoleBundle) {
  const text = await buildConsoleBundle();
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = await writeConsoleBundle();
  console.log(`wrote ${relative(process.cwd(), path)}`);
}
