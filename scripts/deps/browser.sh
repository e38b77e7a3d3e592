#!/usr/bin/env bash
# What the browser tests need (tests/browser: console.test.mjs, call.test.mjs): Debian's chromium (driven headless by playwright-core) and the npm packages
# pinned in tests/browser (playwright-core). The /console page does not need this: it runs on the client SDK's browser
# bundle (SignalR inside), committed in src/Caas.Web/wwwroot/console/lib. Idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

if [ ! -x /usr/bin/chromium ]; then
  echo "browser deps: installing chromium"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "browser deps: installing nodejs and npm"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm
fi

if [ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ]; then
  echo "browser deps: npm ci in tests/browser"
  (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund)
else
  echo "browser deps: all present"
fi
