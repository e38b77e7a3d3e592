#!/usr/bin/env bash
# Debian's ffmpeg (ffmpeg and ffprobe): video poster frames and durations for media thumbnails, and the tests that
# make a tiny video. Idempotent: installs the package only when a binary is missing.
set -euo pipefail

if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
  echo "ffmpeg deps: $(ffmpeg -version | head -1 | awk '{print $3}') present"
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
echo "ffmpeg deps: installing ffmpeg"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends ffmpeg
