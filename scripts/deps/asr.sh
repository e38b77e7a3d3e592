#!/usr/bin/env bash
# Debian packages of the speech enricher and its tests: pocketsphinx with the en-us model (recognition), ffmpeg
# (decoding voice notes to 16 kHz mono PCM, ffprobe for durations) and espeak-ng (renders the test and evaluation speech).
# Idempotent: exits at once when the binaries and the model are there, runs apt-get only for what is missing.
set -euo pipefail

model=/usr/share/pocketsphinx/model/en-us
if command -v pocketsphinx_continuous >/dev/null 2>&1 && [ -f "$model/en-us.lm.bin" ] && [ -f "$model/cmudict-en-us.dict" ] \
   && command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 && command -v espeak-ng >/dev/null 2>&1; then
  echo "asr deps: all present"
  exit 0
fi

packages=(pocketsphinx pocketsphinx-en-us ffmpeg espeak-ng)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ "${#missing[@]}" -eq 0 ] && { echo "asr deps: all packages installed"; exit 0; }

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
echo "asr deps: installing ${missing[*]}"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
