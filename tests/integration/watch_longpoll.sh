#!/usr/bin/env bash
# Long-polls (issue 8): GET ...?index=R&wait=T parks on the event loop until
# a change or T. REFRESH and metrics rounds are slowed to an hour, so only
# this test's Docker changes move the cache.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
PY=/usr/bin/python3
CLIENTS="$SR_SRCDIR/tests/integration/watch_clients.py"

start_registry longpoll REFRESH_INTERVAL_SEC=3600 METRICS_REFRESH_INTERVAL_SEC=3600
ok $? "registry started"
URL="http://127.0.0.1:$REG_PORT"
N="${SR_PREFIX}lp"
stream_up() { curl -sf "$URL/cache/stats" | jq -e '.docker.events_connected == true'; }
poll_until 15 stream_up; ok $? "events stream connected"
# The first metrics round gives every cached service an entry (one change
# each); after it, only this test moves the cache.
round_done() { curl -sf "$URL/cache/stats" | jq -e '.refreshes >= 1 and .metrics == .services'; }
poll_until 30 round_done; ok $? "initial refresh and metrics round done"
create_service lp --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
listed() { curl -sf -o /dev/null "$URL/services/$N"; }
poll_until 10 listed; ok $? "service listed"

index_of() { tr -d '\r' <"$1" | awk 'tolower($1)=="x-registry-index:"{print $2}'; }
cur_index() { curl -sI "$URL/services/$N" | tr -d '\r' | awk 'tolower($1)=="x-registry-index:"{print $2}'; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
longpolls() { metric "$URL" 'swarm_registry_watchers{kind="longpoll"}'; }
parked() { [[ $(longpolls) == "$1" ]]; }

# Every read answer carries the index.
req "$URL/services/$N"
IDX=$(index_of "$SR_TMP/headers")
[[ $IDX =~ ^[0-9]+$ && $IDX -gt 0 ]]; ok $? "GET /services/{name}: X-Registry-Index $IDX"
req "$URL/services"
[[ $(index_of "$SR_TMP/headers") == "$IDX" ]]; ok $? "GET /services: the same index"
[[ $(jq .cache_version <<<"$BODY") == "$IDX" ]]; ok $? "... which is the body's cache_version"

# An h2 client that half-closes has given up on its event stream and its
# long-poll, as HTTP/1.1 takes it: both cancelled, the connection closed.
out=$($PY "$SR_SRCDIR/tests/integration/api_clients.py" halfclose_waiting "$REG_PORT")
diag "$out"
jq -e '.rst == {"1": 8, "5": 8} and .closed_after != null and .closed_after < 2' <<<"$out" >/dev/null
ok $? "h2 half-close with an event stream and a long-poll open: both CANCELled, closed at once"

# 1. The current index waits, and a real docker service update ends it.
curl -s -D "$SR_TMP/lp1.h" -o "$SR_TMP/lp1.b" -w '%{http_code}' \
    "$URL/services/$N?index=$IDX&wait=30s" >"$SR_TMP/lp1.code" &
LP=$!
poll_ms 3000 10 parked 1; ok $? "long-poll with the current index is parked (${POLL_MS} ms)"
kill -0 $LP 2>/dev/null; ok $? "... and has not answered"
docker service update --detach --label-add w.lp=1 "$N" >/dev/null 2>&1
T_UPD=$(ms)
answered() { ! kill -0 $LP 2>/dev/null; }
poll_ms 1000 5 answered; rc=$?; T_ANS=$(ms)
ok $rc "it answers within 1 s of the docker service update ($((T_ANS - T_UPD)) ms after the command returned)"
wait $LP
is "$(cat "$SR_TMP/lp1.code")" 200 "... 200"
jq -e '.labels["w.lp"] == "1"' "$SR_TMP/lp1.b" >/dev/null; ok $? "... with the updated record"
IDX2=$(index_of "$SR_TMP/lp1.h")
(( IDX2 > IDX )); ok $? "... and a newer index ($IDX -> $IDX2)"

# 2. An old index answers at once.
T0=$(ms)
req "$URL/services/$N?index=$IDX&wait=30s"
T1=$(ms)
(( T1 - T0 < 500 )) && [[ $HTTP_STATUS == 200 ]]; ok $? "an old index answers at once ($((T1 - T0)) ms)"
is "$(index_of "$SR_TMP/headers")" "$IDX2" "... with the current index"

# 3. The wait bound: 2 s plus at most 2/16 s of jitter, same index, same body.
req "$URL/services/$N"; PLAIN=$BODY
IDX2=$(index_of "$SR_TMP/headers")
T0=$(ms)
req "$URL/services/$N?index=$IDX2&wait=2s"
EL=$(( $(ms) - T0 ))
(( EL >= 2000 && EL <= 2400 )); ok $? "wait=2s answers after ${EL} ms (2000-2125 + slack)"
is "$(index_of "$SR_TMP/headers")" "$IDX2" "... with the same index"
[[ $BODY == "$PLAIN" ]]; ok $? "... and the same body"
T0=$(ms)
req "$URL/services?index=$IDX2&wait=1"
EL=$(( $(ms) - T0 ))
(( EL >= 1000 && EL <= 1300 )); ok $? "wait=1 (plain seconds) on /services: ${EL} ms"
req "$URL/services?index=$IDX2&wait=later"
is "$HTTP_STATUS" 400 "a bad wait: 400"
req "$URL/services/$N/metrics?index=$IDX2&wait=1500ms"
is "$HTTP_STATUS" 200 "/services/{name}/metrics long-polls too (${EL} ms)"

# 4. Another service's change does not wake a /services/{name} long-poll,
#    but wakes a /services one.
IDX2=$(cur_index)
curl -s -o /dev/null -w '%{http_code}' "$URL/services/$N?index=$IDX2&wait=30s" >"$SR_TMP/lp4a" &
LPA=$!
curl -s -o /dev/null -w '%{http_code}' "$URL/services?index=$IDX2&wait=30s" >"$SR_TMP/lp4b" &
LPB=$!
poll_ms 3000 10 parked 2; ok $? "two long-polls parked"
create_service other --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
gone_b() { ! kill -0 $LPB 2>/dev/null; }
poll_ms 2000 10 gone_b; ok $? "a new service wakes the /services long-poll (${POLL_MS} ms)"
kill -0 $LPA 2>/dev/null; ok $? "... not the /services/$N one"
parked 1; ok $? "... which stays parked"
kill $LPA 2>/dev/null; wait $LPA 2>/dev/null; wait $LPB 2>/dev/null

# 5. A client that goes away while parked is forgotten at once (HTTP/1.1).
curl -s -o /dev/null --max-time 1 "$URL/services/$N?index=$(cur_index)&wait=60s"
poll_ms 2000 10 parked 0; ok $? "a client that left a long-poll is dropped (${POLL_MS} ms)"

# 6. HTTP/2: many parked streams on one connection; one reset, another
#    connection closed, while parked; one change answers the rest.
OUT=$($PY "$CLIENTS" h2-longpoll --port "$REG_PORT" --name "$N" --n 50)
diag "$OUT"
jq -e '.parked' <<<"$OUT" >/dev/null; ok $? "h2: 50 + 10 streams parked"
jq -e '.dropped_after_reset_and_close' <<<"$OUT" >/dev/null
ok $? "h2: a reset stream and a closed connection leave no watcher behind"
jq -e '.early == 0' <<<"$OUT" >/dev/null; ok $? "h2: none answered before the change"
jq -e '.all_answered and .bodies_ok' <<<"$OUT" >/dev/null; ok $? "h2: all 49 answered with the new record"
jq -e '(.indexes | length) == 1 and (.indexes[0] | tonumber) > .old_index' <<<"$OUT" >/dev/null
ok $? "h2: each with the new index"
jq -e '.max_after_update_ms < 1000' <<<"$OUT" >/dev/null
ok $? "h2: within 1 s of the update ($(jq .max_after_update_ms <<<"$OUT") ms)"
jq -e '.after_status == 200' <<<"$OUT" >/dev/null; ok $? "h2: the connection still serves"

# 7. Graceful stop answers parked long-polls at once.
curl -s -o "$SR_TMP/lp7.b" -w '%{http_code}' "$URL/services/$N?index=$(cur_index)&wait=60s" >"$SR_TMP/lp7.code" &
LP7=$!
poll_ms 3000 10 parked 1; ok $? "parked before the stop"
T0=$(ms)
kill -TERM "$REG_PID"
done7() { ! kill -0 $LP7 2>/dev/null; }
poll_ms 2000 10 done7; ok $? "SIGTERM answers a parked long-poll ($(( $(ms) - T0 )) ms)"
is "$(cat "$SR_TMP/lp7.code")" 200 "... with 200"
wait "$REG_PID"; is $? 0 "registry exits 0"
! grep -E "ERROR|Sanitizer|runtime error" "$REG_LOG" >/dev/null; ok $? "no errors or sanitizer reports in the log"
done_testing
