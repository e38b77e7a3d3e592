#!/usr/bin/env bash
# The Redis server the tests run against (scripts/test.sh starts a throwaway redis-server on a free loopback port).
# Idempotent: installs the Debian package only when redis-server is missing.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  echo "redis deps: $(redis-server --version | awk '{print $3}') present"
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
echo "redis deps: installing redis-server"
$sudo_cmd apt-get update -qq
# The Debian package starts a default server on port 6379; the tests never use it.
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends redis-server
