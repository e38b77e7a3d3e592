#!/usr/bin/env bash
# coturn, the TURN/STUN server the tests run (scripts/test.sh starts two throwaway instances on loopback).
# Idempotent: installs the Debian package only when turnserver or turnutils_uclient is missing. The package's own
# service stays disabled (Debian ships it off); the tests never use it.
set -euo pipefail

if command -v turnserver >/dev/null 2>&1 && command -v turnutils_uclient >/dev/null 2>&1; then
  echo "coturn deps: turnserver present"
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
echo "coturn deps: installing coturn"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends coturn
