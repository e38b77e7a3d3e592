#!/usr/bin/env bash
# The PostgreSQL server the tests run against (scripts/test.sh starts a throwaway cluster from its binaries).
# Idempotent: installs the Debian packages only when no server binaries (initdb, pg_ctl) are found, or when the server
# lacks pg_trgm (postgresql-contrib: search suggestions and typo-tolerant user search).
set -euo pipefail

for bin in /usr/lib/postgresql/*/bin; do
  if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ]; then
    version="$(basename "$(dirname "$bin")")"
    if [ -f "/usr/share/postgresql/$version/extension/pg_trgm.control" ]; then
      echo "postgres deps: server and pg_trgm present in $bin"
      exit 0
    fi
  fi
done

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
echo "postgres deps: installing postgresql and postgresql-contrib"
$sudo_cmd apt-get update -qq
# The Debian package creates and starts a default cluster on port 5432; the tests never use it.
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib
