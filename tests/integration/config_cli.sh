#!/usr/bin/env bash
# The command line and the environment: bad values exit 2 with one line naming
# the variable; --help/--version; log format; SIGTERM stops cleanly.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

bad_env() { # VAR VALUE
    local err rc v
    v=$(printf '%q' "$2") # a value with a newline stays on the test's line
    err=$(env -i PATH="$PATH" "$1=$2" "$SR_BIN" 2>&1 >/dev/null); rc=$?
    is "$rc" 2 "$1=$v exits 2"
    is "$(printf '%s\n' "$err" | wc -l)" 1 "$1=$v prints one line"
    [[ "$err" == *"$1"* ]]; ok $? "$1=$v message names the variable: $err"
}
bad_env HOST 0.0.0.0:5001
bad_env PORT abc
bad_env PORT 70000
bad_env PORT +80
bad_env API_SPIN_USEC -0
bad_env REFRESH_INTERVAL_SEC 0
bad_env REFRESH_INTERVAL_SEC -1
bad_env METRICS_REFRESH_INTERVAL_SEC x
bad_env LOG_LEVEL LOUD
bad_env DOCKER_BASE_URL ftp://example
bad_env ROLE autoscaler
bad_env PORT $'50\n01'
bad_env LOG_LEVEL $'INFO\r\nERROR fake line'

out=$("$SR_BIN" --help); ok $? "--help exits 0"
[[ "$out" == *DOCKER_BASE_URL* ]]; ok $? "--help lists the variables"
out=$("$SR_BIN" --version); ok $? "--version exits 0"
[[ "$out" =~ ^service-registry\ [0-9]+\.[0-9]+\.[0-9]+$ ]]; ok $? "--version prints the version ($out)"
"$SR_BIN" --bogus 2>/dev/null; is $? 2 "unknown argument exits 2"

# Runs, logs in the spec's format, and stops on SIGTERM with exit 0 within 2 s.
start_registry cli LOG_LEVEL=INFO
ok $? "registry answers on 127.0.0.1:$REG_PORT"
first=$(head -n 1 "$REG_LOG")
[[ "$first" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+00:00\ INFO\ role=service-registry\ logger=[a-z]+\ .+ ]]
ok $? "log line in the spec's format: $first"
grep -q ' DEBUG ' "$REG_LOG"; ok $((!$?)) "LOG_LEVEL=INFO filters DEBUG lines"

t0=$(date +%s%N)
kill -TERM "$REG_PID"
wait "$REG_PID"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
is "$rc" 0 "SIGTERM: exit status 0"
(( ms < 2000 )); ok $? "SIGTERM: stopped in ${ms} ms (< 2000)"

# SIGINT too, with a client connected (keep-alive) at the time.
start_registry cli2
exec 3<>/dev/tcp/127.0.0.1/"$REG_PORT"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' >&3
kill -INT "$REG_PID"
wait "$REG_PID"; is $? 0 "SIGINT with an open keep-alive connection: exit 0"
exec 3<&-

# `healthcheck` on a wildcard IPv6 listener asks ::1, with the address in
# brackets in Host (a bare ::1:port is an invalid Host: 400).
if start_registry v6 HOST=::; then
    out=$(env ROLE=service-registry HOST=:: PORT="$REG_PORT" "$SR_BIN" healthcheck)
    [[ $out == '{"status":'* ]]; ok $? "healthcheck with HOST=:: gets the /health document (${out:0:40})"
    stop_registry "$REG_PID"
else
    skip "healthcheck with HOST=::" "no IPv6 listener here"
fi

# A small open-file limit lowers API_MAX_CONNECTIONS with a warning, keeping
# half of the descriptors for the rest (here 100 -> 50).
( ulimit -n 100 && { start_registry fds API_MAX_CONNECTIONS=1024; stop_registry "$REG_PID"; } )
grep -q "max connections 1024 lowered to 50: the open-file limit (ulimit -n) is 100" \
    "$SR_TMP/fds.log"
ok $? "ulimit -n 100: max connections lowered to 50, with a warning"

done_testing
