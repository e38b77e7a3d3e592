#!/usr/bin/env bash
# The PostgreSQL server the tests run against (scripts/test.sh starts a throwaway cluster from its binaries).
# Idempotent: installs the Debian package only when no server binaries (initdb, pg_ctl) are found.
set -euo pipefail

for bin in /usr/lib/postgresql/*/bin; do
  if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ]; then
    echo "postgres deps: server present in $bin"
    exit 0
  fi
done

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
echo "postgres deps: installing postgresql"
$sudo_cmd apt-get update -qq
# The Debian package creates and starts a default cluster on port 5432; the tests never use it.
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends postgresql
