#!/usr/bin/env bash
# The README's test command. Installs what is missing, brings up the local
# swarm, builds three variants and runs the tests:
#   build-test  -Werror                    unit + integration
#   build-asan  -Werror, ASan + UBSan      unit + integration
#   build-tsan  -Werror, TSan              the cache's concurrency tests, the API server's threads
#   build-fuzz  clang, ASan + UBSan        libFuzzer targets, FUZZ_SECONDS (20) each
# Ends with one "N passed, N failed" line; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

./deploy/local/install-deps.sh --test || exit 1
./deploy/local/swarm-up.sh || exit 1

setup() { # dir, extra meson args...
    local dir=$1; shift
    if [[ ! -d "$dir" ]]; then
        meson setup "$dir" -Dwerror=true --buildtype=debugoptimized "$@" >/dev/null || return 1
    fi
    [[ $dir != build-fuzz ]] || meson configure "$dir" -Dfuzz_seconds="${FUZZ_SECONDS:-20}" >/dev/null
    ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
}

failed_build=0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1

runs=()
run_suite() { # dir, meson test args...
    local dir=$1; shift
    echo "== meson test -C $dir $*"
    meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
    runs+=("$dir")
}

if setup build-test; then
    run_suite build-test --suite unit --suite integration --suite e2e
else
    failed_build=$((failed_build + 1))
fi
if setup build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
    run_suite build-asan --suite unit --suite integration
else
    failed_build=$((failed_build + 1))
fi
if setup build-tsan -Db_sanitize=thread -Db_lundef=false; then
    run_suite build-tsan --suite unit_cache_threads --suite unit_cache --suite unit_api_server
else
    failed_build=$((failed_build + 1))
fi
# Coverage-guided fuzzing of what clients and Docker send (tests/fuzz). Not
# -Werror: clang warns about other things than gcc, which the builds above
# already hold to -Werror.
if CC=clang setup build-fuzz -Dwerror=false -Dfuzz=true -Db_sanitize=address,undefined \
    -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link; then
    run_suite build-fuzz --suite fuzz
else
    failed_build=$((failed_build + 1))
fi

# Count test results from meson's logs (one JSON object per test).
read -r passed failed < <(
    for d in "${runs[@]}"; do cat "$d/meson-logs/testlog.json"; done |
    /usr/bin/python3 -c '
import json, sys
p = f = 0
for line in sys.stdin:
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL", "SKIP"): p += 1
    else: f += 1
print(p, f)')
failed=$((failed + failed_build))
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
