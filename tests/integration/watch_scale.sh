#!/usr/bin/env bash
# 1000 concurrent watchers on loopback (issue 8): SSE streams, then
# long-polls, each on its own HTTP/1.1 connection. They must cost under
# 20 MB more RSS (VmRSS before/after they connect) and all receive a change
# within 50 ms of the change entering the cache (the event's own timestamp,
# set at commit; see watch_clients.py cmd_many for the method).
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
PY=/usr/bin/python3
CLIENTS="$SR_SRCDIR/tests/integration/watch_clients.py"
NW=${WATCHERS:-1000}

(( $(ulimit -n) >= NW + 200 )) || ulimit -n $((NW + 1024)) 2>/dev/null ||
    skip_all "needs $((NW + 200)) open files (ulimit -n is $(ulimit -n))"
start_registry scale REFRESH_INTERVAL_SEC=3600 METRICS_REFRESH_INTERVAL_SEC=3600
ok $? "registry started"
URL="http://127.0.0.1:$REG_PORT"
ready() {
    curl -sf "$URL/cache/stats" |
        jq -e '.docker.events_connected and .refreshes >= 1 and .metrics == .services'
}
poll_until 30 ready; ok $? "ready"
N="${SR_PREFIX}scale"
create_service scale --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
listed() { curl -sf -o /dev/null "$URL/services/$N"; }
poll_until 10 listed; ok $? "service listed"

for mode in sse longpoll; do
    OUT=$($PY "$CLIENTS" many --port "$REG_PORT" --pid "$REG_PID" --name "$N" --n "$NW" --mode $mode)
    diag "$OUT"
    jq -e '.ready' <<<"$OUT" >/dev/null; ok $? "$mode: $NW watchers connected and registered"
    jq -e ".received == $NW" <<<"$OUT" >/dev/null
    ok $? "$mode: all $NW received the change ($(jq .received <<<"$OUT"))"
    if grep -q 'libasan\|libtsan' "/proc/$REG_PID/maps"; then
        # A sanitizer's shadow memory and quarantine: RSS says nothing.
        skip "$mode: RSS +$(jq .rss_delta_kb <<<"$OUT") KiB for $NW watchers" "sanitizer build"
    else
        jq -e '.rss_delta_kb < 20480' <<<"$OUT" >/dev/null
        ok $? "$mode: RSS +$(jq .rss_delta_kb <<<"$OUT") KiB for $NW watchers (< 20 MB)"
    fi
    jq -e '.lat_ms_max != null and .lat_ms_max < 50' <<<"$OUT" >/dev/null
    ok $? "$mode: slowest watcher $(jq .lat_ms_max <<<"$OUT") ms after the commit (p50 $(jq .lat_ms_p50 <<<"$OUT") ms; < 50 ms)"
    gone() { [[ $(metric "$URL" "swarm_registry_watchers{kind=\"$mode\"}") == 0 ]]; }
    poll_until 10 gone; ok $? "$mode: all watchers released after the clients closed"
done
kill -TERM "$REG_PID"; wait "$REG_PID"; is $? 0 "registry exits 0"
! grep -E "ERROR|Sanitizer|runtime error" "$REG_LOG" >/dev/null; ok $? "no errors or sanitizer reports"
done_testing
