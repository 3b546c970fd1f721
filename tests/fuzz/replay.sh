#!/bin/sh
# tests/fuzz/replay.sh DIR
# Runs every corpus-replay binary in DIR (the libFuzzer drivers linked with replay_main.c, see
# the Makefile's fuzz-replay target) from the repository root, so each finds its corpus in
# tests/fuzz/corpus/<driver>/. Prints `fuzz-replay: N files, N drivers` and exits 1 if any
# driver crashed or failed to read its corpus.
set -u

dir=${1:?usage: replay.sh DIR}
files=0
drivers=0
failed=""
out=$(mktemp "${TMPDIR:-/tmp}/petrel-replay.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT INT TERM

for bin in "$dir"/*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    drivers=$((drivers + 1))
    "$bin" >"$out" 2>&1
    rc=$?
    n=$(sed -n "s/^$name: \([0-9][0-9]*\) files\$/\1/p" "$out" | tail -n 1)
    if [ "$rc" -ne 0 ] || [ -z "$n" ]; then
        sed "s|^|$name: |" "$out"
        echo "$name: FAILED (exit status $rc)"
        failed="$failed $name"
    else
        # show warnings such as a missing corpus, not the count line
        grep -v "^$name: [0-9]* files\$" "$out" | sed "s|^|$name: |"
    fi
    files=$((files + ${n:-0}))
done

echo "fuzz-replay: $files files, $drivers drivers"
if [ -n "$failed" ]; then
    echo "fuzz-replay: crashed:$failed"
    exit 1
fi
exit 0
