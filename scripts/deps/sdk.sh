#!/usr/bin/env bash
# What the JavaScript client SDK (clients/js) needs to build and test: Node.js 20+ with npm, and the npm packages
# pinned in clients/js/package-lock.json (@microsoft/signalr, typescript), installed with `npm ci` into
# clients/js/node_modules (git-ignored). Idempotent: does nothing when they are installed at the locked versions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SDK="$ROOT/clients/js"
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "sdk deps: installing nodejs and npm"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "sdk deps: Node.js $(node --version) is too old; the SDK's tests need Node.js 20 or later" >&2
  exit 1
fi

# npm ci leaves node_modules/.package-lock.json as a copy of what it installed: equal to the lock, nothing to do.
if [ -f "$SDK/node_modules/.package-lock.json" ] && [ -d "$SDK/node_modules/typescript" ] && [ -d "$SDK/node_modules/@microsoft/signalr" ] \
   && node -e '
     const a = require(process.argv[1]), b = require(process.argv[2]);
     const strip = (p) => Object.fromEntries(Object.entries(p.packages).filter(([k]) => k).map(([k, v]) => [k, v.version]));
     process.exit(JSON.stringify(strip(a)) === JSON.stringify(strip(b)) ? 0 : 1);' "$SDK/package-lock.json" "$SDK/node_modules/.package-lock.json"; then
  echo "sdk deps: all present"
  exit 0
fi
echo "sdk deps: npm ci in clients/js"
(cd "$SDK" && npm ci --no-audit --no-fund)
