#!/bin/sh
# tests/fuzz/campaign.sh BINDIR WORKDIR CPU_SECONDS DRIVER...
# The long form of fuzzing (`make fuzz-campaign`, docs/testing.md). For each driver, in turn:
#   1. its coverage over the committed corpus (libFuzzer -runs=0: `cov` edges, `ft` features);
#   2. one run of CPU_SECONDS of CPU time in one go (RLIMIT_CPU ends it, so a run that shares
#      the machine still gets its full CPU time), new inputs into WORKDIR/<driver>/new;
#   3. the inputs that add coverage minimised into tests/fuzz/corpus/<driver>/ (-merge=1: an
#      input joins only if it adds a feature, the smallest such input first);
#   4. the coverage over the corpus again.
# Prints one line per driver: `campaign: DRIVER cpu=S s wall=W s cov A -> B ft C -> D corpus +N`.
# A crash stops the campaign with the reproducer's path (exit 1). Run from the repository root.
set -u

bindir=${1:?usage: campaign.sh BINDIR WORKDIR CPU_SECONDS DRIVER...}
work=${2:?usage: campaign.sh BINDIR WORKDIR CPU_SECONDS DRIVER...}
seconds=${3:?usage: campaign.sh BINDIR WORKDIR CPU_SECONDS DRIVER...}
shift 3

# "#N INITED cov: C ft: F corp: ..." -> "C F"
coverage() {
    "$bindir/$1" -runs=0 "tests/fuzz/corpus/$1" 2>&1 |
        sed -n 's/.*INITED cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \2/p' | tail -n 1
}

for d in "$@"; do
    bin="$bindir/$d"
    [ -x "$bin" ] || { echo "campaign: $bin is not built (make fuzz-campaign builds it)" >&2; exit 2; }
    mkdir -p "$work/$d/new" "$work/$d/crashes"
    before=$(coverage "$d")
    files_before=$(ls "tests/fuzz/corpus/$d" | wc -l)
    start=$(date +%s)
    # -timeout: an input that takes 10 s is a hang; -rss_limit_mb: one that takes 2 GB a leak.
    /usr/bin/time -f "%U %S" -o "$work/$d/time" prlimit --cpu="$seconds" "$bin" -dict="tests/fuzz/$d.dict" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$work/$d/crashes/" -print_final_stats=1 \
        "$work/$d/new" "tests/fuzz/corpus/$d" >"$work/$d/log" 2>&1
    cpu=$(awk 'END { printf "%d", $1 + $2 }' "$work/$d/time")
    if ls "$work/$d/crashes/" | grep -q .; then
        echo "campaign: $d found $(ls "$work/$d/crashes/" | head -n 1): see $work/$d/log" >&2
        exit 1
    fi
    "$bin" -merge=1 "tests/fuzz/corpus/$d" "$work/$d/new" >"$work/$d/merge.log" 2>&1 || {
        echo "campaign: $d: merge failed, see $work/$d/merge.log" >&2
        exit 1
    }
    after=$(coverage "$d")
    files_after=$(ls "tests/fuzz/corpus/$d" | wc -l)
    set -- $before
    cov0=$1 ft0=$2
    set -- $after
    echo "campaign: $d cpu=${cpu} s wall=$(($(date +%s) - start)) s cov $cov0 -> $1" \
        "ft $ft0 -> $2 corpus +$((files_after - files_before))"
done
