#!/usr/bin/env bash
# SIGTERM: h2c clients get GOAWAY and their in-flight response completes,
# HTTP/1.1 gets Connection: close after the request it was sending, idle
# keep-alive connections are closed, and the process exits 0 in time.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
/usr/bin/python3 -c 'import hpack, hyperframe' 2>/dev/null ||
    skip_all "python3-h2 (hpack, hyperframe) is not installed"

start_registry shutdown REFRESH_INTERVAL_SEC=3600
ok $? "registry started"
t0=$(date +%s%N)
out=$(/usr/bin/python3 "$SR_SRCDIR/tests/integration/api_clients.py" shutdown "$REG_PORT" "$REG_PID")
diag "$out"
is "$(jq .h2_before <<<"$out")" 100 "before SIGTERM: h2 response held at a 100-byte window"
is "$(jq .half_read_before_stop <<<"$out")" true "before SIGTERM: the half HTTP/1.1 head was read"
is "$(jq .idle_closed <<<"$out")" true "idle HTTP/1.1 keep-alive connection closed"
jq -e '.h2_goaways | length >= 1 and all(.[1] == 0)' <<<"$out" >/dev/null
ok $? "h2: GOAWAY NO_ERROR"
jq -e '.h2_goaways[0][0] == 2147483647 and .h2_goaways[-1][0] == 1' <<<"$out" >/dev/null
ok $? "h2: a shutdown notice (2^31-1), then the final GOAWAY naming stream 1"
is "$(jq .h2_complete <<<"$out")" true "h2: the in-flight response completes"
is "$(jq .half_status <<<"$out")" 200 "HTTP/1.1: the request in progress is answered"
is "$(jq .half_connection_close <<<"$out")" true "HTTP/1.1: ... with Connection: close"
gone() { ! kill -0 "$REG_PID" 2>/dev/null; }
poll_until 5 gone; ok $? "the process exits"
wait "$REG_PID"; rc=$?
is "$rc" 0 "exit status 0"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
(( ms < 4000 )); ok $? "all of it within 4 s (${ms} ms)"
grep -q "main.*stopped" "$REG_LOG"; ok $? "ordered shutdown logged"
done_testing
