#!/usr/bin/env bash
# Builds the fuzz seed corpus from the real traces in traces/ (and, when given, extra trace
# directories recorded with the current recorder, e.g. schema-4 files with block markers):
# per scenario one input of its decompressed files joined by the separator line "#file" (see
# WholePipeline.fileSeparator) and one input that is its first LZ4 file as recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
out=Fuzz/corpus
mkdir -p "$out"
seed() {  # name dir
    local name=$1 dir=$2 first=1
    : > "$out/$name.txt"
    for f in "$dir"/*.jsonl.lz4; do
        if [ $first = 0 ]; then printf '\n#file\n' >> "$out/$name.txt"; fi
        lz4cat -q "$f" >> "$out/$name.txt" 2>/dev/null || true
        first=0
    done
    cp "$(ls "$dir"/*.jsonl.lz4 | head -1)" "$out/$name.lz4"
}
for d in traces/*/; do seed "$(basename "$d")" "${d%/}"; done
for d in "$@"; do seed "recorded-$(basename "$d")" "$d"; done
ls "$out" | wc -l
