#!/usr/bin/env bash
# run.sh FUZZER SEED_DIR SECONDS: fuzzes for SECONDS from a copy of the
# seeds (new inputs go to a temporary corpus, removed afterwards). Prints
# TAP; a crash, leak or sanitizer report fails it, and the input that did
# it is kept under /tmp and named in the output.
set -u
fuzzer=$1 seeds=$2 secs=$3
work=$(mktemp -d /tmp/srfuzz.XXXXXX)
trap 'rm -rf "$work/corpus"' EXIT
mkdir -p "$work/corpus"
cp "$seeds"/* "$work/corpus/" 2>/dev/null
echo "1..1"
# -close_fd_mask=1: the targets print nothing worth keeping on stdout.
if "$fuzzer" "$work/corpus" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/" -print_final_stats=1 -close_fd_mask=1 >"$work/log" 2>&1; then
    echo "ok 1 - $(basename "$fuzzer"): $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" |
        awk '{print $2}') runs in ${secs} s, nothing found"
    rm -rf "$work"
else
    echo "not ok 1 - $(basename "$fuzzer") found a problem; kept in $work"
    grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$work/log" | head -20 | sed 's/^/# /'
    exit 1
fi
