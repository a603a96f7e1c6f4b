#!/usr/bin/env bash
# Build the svaclr `prepare` QA corpus.
# Usage: make_corpus.sh [DEST]   (default: ./data beside this script; DEST is wiped and rebuilt)
# Needs: ffmpeg + ffprobe CLIs, python3 (stdlib only), coreutils. Encoders run with -threads 1 under nice.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${1:-$HERE/data}"
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { echo "make_corpus.sh: ffmpeg/ffprobe not found" >&2; exit 1; }
start=$(date +%s)
nice -n 10 python3 "$HERE/make_corpus.py" "$DEST"
cp "$DEST/CASES.md" "$HERE/CASES.md"
echo "corpus: $DEST ($(du -sh "$DEST" | cut -f1)), built in $(( $(date +%s) - start )) s; cases: $HERE/CASES.md"
