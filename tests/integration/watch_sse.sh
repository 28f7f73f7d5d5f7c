#!/usr/bin/env bash
# GET /events/stream (issue 8) with real clients: curl -N, httpx, raw
# sockets, h2. Live events in order, Last-Event-ID resume without gap or
# duplicate, resync_required once the ring has moved on, heartbeats, slow
# readers. Refresh and metrics rounds are slowed to an hour so that only
# this test's changes move the cache.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
PY=/usr/bin/python3
CLIENTS="$SR_SRCDIR/tests/integration/watch_clients.py"
QUIET=(REFRESH_INTERVAL_SEC=3600 METRICS_REFRESH_INTERVAL_SEC=3600)

ready() {  # events stream up, first refresh and metrics round done
    curl -sf "$URL/cache/stats" |
        jq -e '.docker.events_connected and .refreshes >= 1 and .metrics == .services'
}
sse_clients() { metric "$URL" 'swarm_registry_watchers{kind="sse"}'; }
clients_are() { [[ $(sse_clients) == "$1" ]]; }
version() { curl -sf "$URL/cache/stats" | jq .cache_version; }

start_registry sse "${QUIET[@]}" SSE_HEARTBEAT_SEC=1
ok $? "registry started (heartbeat 1 s)"
URL="http://127.0.0.1:$REG_PORT"
poll_until 30 ready; ok $? "events stream connected, first rounds done"
N="${SR_PREFIX}sse"
create_service sse --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
listed() { curl -sf -o /dev/null "$URL/services/$N"; }
poll_until 10 listed; ok $? "service listed"

# 1. curl -N: live events in order.
curl -sN -D "$SR_TMP/c1.h" "$URL/events/stream?types=service.*" >"$SR_TMP/c1.out" &
C1=$!
poll_ms 3000 10 clients_are 1; ok $? "curl -N connected (${POLL_MS} ms)"
grep -qi '^content-type: text/event-stream' "$SR_TMP/c1.h"; ok $? "Content-Type: text/event-stream"
grep -qi '^x-registry-index: [0-9]' "$SR_TMP/c1.h"; ok $? "X-Registry-Index on the stream"
for i in 1 2 3; do
    docker service update --detach --label-add "w.seq=$i" "$N" >/dev/null 2>&1
done
three() { [[ $(grep -c '"w.seq":"3"' "$SR_TMP/c1.out") -ge 1 ]]; }
poll_until 10 three; ok $? "the third update arrived"
kill $C1; wait $C1 2>/dev/null
SEQ=$(grep '^data: ' "$SR_TMP/c1.out" | sed 's/^data: //' | jq -r --arg n "$N" \
      'select(.service.name == $n) | .service.labels["w.seq"] // "-"' | tr '\n' ' ')
is "$SEQ" "1 2 3 " "events arrive in order: w.seq 1 2 3"
IDS=$(grep '^id: ' "$SR_TMP/c1.out" | cut -c5- | tr '\n' ' ')
sort -n -c <(tr ' ' '\n' <<<"$IDS" | grep .) 2>/dev/null; ok $? "ids increase ($IDS)"
EVN=$(grep '^event: ' "$SR_TMP/c1.out" | cut -c8- | sort -u | tr '\n' ' ')
is "$EVN" "service.updated " "event: is the routing key; types=service.* kept only those"
poll_ms 2000 10 clients_are 0; ok $? "a client that left is dropped (${POLL_MS} ms)"

# 2. httpx: disconnect, changes, resume with Last-Event-ID: no gap, no
#    duplicate (checked against a reference curl -N stream).
OUT=$($PY "$CLIENTS" sse-resume --port "$REG_PORT" --name "$N")
diag "$OUT"
jq -e '.status1 == 200 and .status2 == 200' <<<"$OUT" >/dev/null; ok $? "httpx: both sessions 200"
jq -e '.ref_contiguous' <<<"$OUT" >/dev/null; ok $? "the reference stream saw every revision"
jq -e '.union_is_ref' <<<"$OUT" >/dev/null; ok $? "session 1 + resumed session 2 = every revision (no gap)"
jq -e '.no_duplicates' <<<"$OUT" >/dev/null; ok $? "... and no duplicate"
jq -e '.steps == ["1","2","3","4"]' <<<"$OUT" >/dev/null; ok $? "the four updates, in order, across the reconnect"

# 3. since=R within the ring replays exactly what follows R.
V=$(version)
timeout 3 curl -sN "$URL/events/stream?since=$((V - 2))" >"$SR_TMP/c3.out"
# (ids past V would be changes made by someone else meanwhile: not ours to judge)
is "$(grep '^id: ' "$SR_TMP/c3.out" | cut -c5- | awk -v v="$V" '$1 <= v' | tr '\n' ' ')" "$((V - 1)) $V " "?since=V-2 replays V-1 and V"
timeout 3 curl -sN -H "Last-Event-ID: $((V - 1))" "$URL/events/stream?since=1" >"$SR_TMP/c3b.out"
is "$(grep '^id: ' "$SR_TMP/c3b.out" | cut -c5- | awk -v v="$V" '$1 <= v' | tr '\n' ' ')" "$V " "Last-Event-ID wins over ?since"

# 4. Heartbeats (SSE_HEARTBEAT_SEC=1).
OUT=$($PY "$CLIENTS" sse-heartbeat --port "$REG_PORT" --seconds 3.5)
diag "$OUT"
jq -e '(.heartbeats | length) >= 2' <<<"$OUT" >/dev/null; ok $? "raw socket: ': heartbeat' comments every second"
jq -e '.head == "HTTP/1.1 200 OK"' <<<"$OUT" >/dev/null; ok $? "raw socket: HTTP/1.1 200"

# 5. HTTP/2: three streams on one connection, a filter, a reset.
OUT=$($PY "$CLIENTS" h2-sse --port "$REG_PORT" --name "$N")
diag "$OUT"
jq -e '.registered and .status == 200 and .type == "text/event-stream"' <<<"$OUT" >/dev/null
ok $? "h2: three event streams on one connection"
jq -e '.all_got_it and .filtered_metrics_only' <<<"$OUT" >/dev/null; ok $? "h2: the change reached them; types=metrics.# kept only metrics"
jq -e '.svc_steps == ["1","2"]' <<<"$OUT" >/dev/null; ok $? "h2: after one stream is reset, the others go on"
jq -e '.reset_dropped' <<<"$OUT" >/dev/null; ok $? "h2: the reset stream's client is gone"

req "$URL/events/stream?since=abc"
is "$HTTP_STATUS" 400 "a bad since: 400"
for p in --http1.1 --http2-prior-knowledge; do
    req -I "$p" "$URL/events/stream"
    is "$HTTP_STATUS" 200 "HEAD /events/stream ($p): 200"
    ! grep -qi '^content-length' "$SR_TMP/headers"
    ok $? "HEAD /events/stream ($p): no Content-Length, as the endless GET (RFC 9110 §9.3.2)"
    grep -qi '^content-type: text/event-stream' "$SR_TMP/headers"
    ok $? "HEAD /events/stream ($p): the GET's Content-Type"
done
req "$URL/events"
jq -e '.events | length > 0' <<<"$BODY" >/dev/null; ok $? "GET /events still lists the event types"

# Graceful stop ends open streams (HTTP/1.1 and h2) instead of cutting them.
curl -sN "$URL/events/stream" >/dev/null 2>&1 &
S1=$!
curl -sN --http2-prior-knowledge "$URL/events/stream" >/dev/null 2>&1 &
S2=$!
poll_ms 3000 10 clients_are 2; ok $? "two streams open (HTTP/1.1, h2)"
T0=$(date +%s%N)
kill -TERM "$REG_PID"
ended() { ! kill -0 $S1 2>/dev/null && ! kill -0 $S2 2>/dev/null; }
poll_ms 2000 10 ended; ok $? "SIGTERM ends both streams ($(( ($(date +%s%N) - T0) / 1000000 )) ms)"
wait $S1; R1=$?; wait $S2; R2=$?
is "$R1 $R2" "0 0" "... cleanly (curl exit status 0: a complete response)"
wait "$REG_PID"; is $? 0 "registry exits 0"
! grep -E "ERROR|Sanitizer|runtime error" "$REG_LOG" >/dev/null; ok $? "no errors or sanitizer reports"

# 6. A small ring: resuming from before it gives resync_required, then live.
start_registry ring "${QUIET[@]}" CHANGE_LOG_SIZE=4 SSE_BUFFER_BYTES=4096
ok $? "registry with CHANGE_LOG_SIZE=4 started"
URL="http://127.0.0.1:$REG_PORT"
poll_until 30 ready; ok $? "ready"
V0=$(version)
for i in 1 2 3 4 5 6; do
    docker service update --detach --label-add "w.ring=$i" "$N" >/dev/null 2>&1
done
moved() { (( $(version) >= V0 + 6 )); }
poll_until 15 moved; ok $? "six changes past revision $V0"
OUT=$($PY "$CLIENTS" sse-resync --port "$REG_PORT" --name "$N" --since "$V0")
diag "$OUT"
jq -e '.first_event == "resync_required"' <<<"$OUT" >/dev/null; ok $? "Last-Event-ID older than the ring: resync_required first"
jq -e '.first_body_event == "services.updated" and .first_has_service' <<<"$OUT" >/dev/null
ok $? "... whose data is the full state (services.updated with the service)"
jq -e '(.first_id | tonumber) == .first_cache_version and (.first_id | tonumber) >= '"$((V0 + 6))" <<<"$OUT" >/dev/null
ok $? "... with the current revision as its id"
jq -e '.next_event == "service.updated" and .next_names_service and ((.next_id | tonumber) > (.first_id | tonumber))' <<<"$OUT" >/dev/null
ok $? "then live events continue after it"
timeout 2 curl -sN "$URL/events/stream?since=$(( $(version) + 1000000 ))" >"$SR_TMP/c6.out"
grep -q '^event: resync_required' "$SR_TMP/c6.out"; ok $? "an id from the future (restarted registry): resync_required"

# 7. A reader that does not read: bounded, then resync_required (4 KiB buffer).
#    Three services with a 100 kB label make each clear+refresh round about
#    1 MB of events, more than the kernel's socket buffers absorb.
PAD=$(head -c 100000 /dev/zero | tr '\0' 'x')
for i in 1 2 3; do
    create_service "pad$i" --label autoscaler.enabled=true --label "w.pad=$PAD" --replicas 0 \
        local/busybox:1 sleep 1000000
done
pads() { curl -sf "$URL/services" | jq -e '[.services[].name | select(contains("pad"))] | length == 3'; }
poll_until 10 pads; ok $? "three padded services listed"
OUT=$($PY "$CLIENTS" slow --port "$REG_PORT" --pid "$REG_PID" --rounds 25)
diag "$OUT"
jq -e '.overruns >= 1' <<<"$OUT" >/dev/null; ok $? "slow reader: fell behind its buffer $(jq .overruns <<<"$OUT") times ($(jq .rounds <<<"$OUT") clear+refresh rounds)"
jq -e '.resync >= 1 and .well_formed and .ids_increasing' <<<"$OUT" >/dev/null
ok $? "slow reader: the stream stays well formed and carries resync_required"
jq -e '.state_matches' <<<"$OUT" >/dev/null
ok $? "slow reader: resync_required + what follows rebuild the current service list"
# 25 rounds make about 25 MB of events: an unbounded buffer would show.
GREW=$(jq '.rss_after_kb - .rss_before_kb' <<<"$OUT")
if grep -q 'libasan\|libtsan' "/proc/$REG_PID/maps"; then
    # A sanitizer keeps freed memory in quarantine: RSS says nothing.
    skip "slow reader: RSS grew $GREW KiB" "sanitizer build"
else
    (( GREW < 20000 )); ok $? "slow reader: RSS grew $GREW KiB over ~25 MB of events (bounded)"
fi
kill -TERM "$REG_PID"; wait "$REG_PID"; is $? 0 "registry exits 0"
! grep -E "ERROR|Sanitizer|runtime error" "$REG_LOG" >/dev/null; ok $? "no errors or sanitizer reports"

# 8. Resuming from GET /services' cache_version (the services version) after
#    the ring lost only metrics events: nothing a resync could repair, so
#    no resync_required; one service change lost still gets one. Revisions
#    start at the start time in microseconds, never reused by a restart.
start_registry ring "${QUIET[@]}" CHANGE_LOG_SIZE=4
URL="http://127.0.0.1:$REG_PORT"
poll_until 30 ready; ok $? "registry with CHANGE_LOG_SIZE=4 ready"
(( $(version) > 1700000000000000 )); ok $? "revisions start at the start time in µs ($(version))"
S=$(curl -sf "$URL/services" | jq .cache_version)
for i in 1 2 3 4 5 6; do curl -sf -o /dev/null -X POST "$URL/services/$N/metrics"; done
past() { (( $(version) >= S + 6 )); }
poll_until 10 past; ok $? "six metrics events past the list's revision $S: the ring moved on"
is "$(curl -sf "$URL/services" | jq .cache_version)" "$S" "... and the list's cache_version did not move"
timeout 2 curl -sN "$URL/events/stream?since=$S" >"$SR_TMP/c8.out"
! grep -q '^event: resync_required' "$SR_TMP/c8.out"; ok $? "since=<list cache_version>: no resync_required for lost metrics"
grep -q "^event: metrics.$N" "$SR_TMP/c8.out"; ok $? "... the metrics events the ring still has are replayed"
timeout 2 curl -sN "$URL/events/stream?since=$((S - 1))" >"$SR_TMP/c8b.out"
grep -q '^event: resync_required' "$SR_TMP/c8b.out"; ok $? "since before the last service change: resync_required"
stop_registry "$REG_PID"
done_testing
