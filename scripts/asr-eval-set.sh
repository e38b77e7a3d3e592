#!/usr/bin/env bash
# Renders the speech-recognition evaluation set: every line of scripts/asr-eval/sentences.txt (everyday chat
# sentences written for this project, 388 words; the language model was not built from them) spoken by Debian's
# espeak-ng into a WAV file, and the list `caas eval --task asr --data OUT/set.tsv` reads (audio path TAB transcript).
#   scripts/asr-eval-set.sh [OUT_DIR]     (default data/asr-eval; data/ stays out of git)
# Voice: espeak-ng's en-us with the Klatt voice source at amplitude 25 (the default formant voice is far from the
# human speech the acoustic model was trained on: README "ASR" gives both figures). Idempotent: rewrites OUT_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sentences="$here/asr-eval/sentences.txt"
out="${1:-data/asr-eval}"
voice="${CAAS_ASR_EVAL_VOICE:-en-us+klatt}"
command -v espeak-ng >/dev/null 2>&1 || { echo "no espeak-ng (scripts/deps/asr.sh installs it)" >&2; exit 1; }

mkdir -p "$out"
: > "$out/set.tsv"
n=0
while IFS= read -r line || [ -n "$line" ]; do
  [ -z "$line" ] && continue
  n=$((n + 1))
  name="$(printf 'utt%03d.wav' "$n")"
  espeak-ng -v "$voice" -a 25 -w "$out/$name" "$line" </dev/null
  printf '%s\t%s\n' "$name" "$line" >> "$out/set.tsv"
done < "$sentences"
echo "rendered $n recordings into $out (list: $out/set.tsv)"
