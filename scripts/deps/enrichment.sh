#!/usr/bin/env bash
# Debian packages the enrichment tests need: Tesseract with English data for OCR, ImageMagick to render
# test images, qpdf to encrypt a test PDF, and a few font families so OCR is measured on more than one typeface.
# Idempotent: installs only what is missing, and runs apt-get update at most once.
set -euo pipefail

packages=(tesseract-ocr tesseract-ocr-eng imagemagick qpdf fonts-dejavu-core fonts-liberation2 fonts-freefont-ttf)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "enrichment deps: all present"
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
echo "enrichment deps: installing ${missing[*]}"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
