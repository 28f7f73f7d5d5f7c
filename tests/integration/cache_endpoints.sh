#!/usr/bin/env bash
# /cache/stats, /cache/refresh, /cache/clear and /health over HTTP/1.1 and h2c.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

create_service ce --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
start_registry cache REFRESH_INTERVAL_SEC=3600
URL="http://127.0.0.1:$REG_PORT"
N="${SR_PREFIX}ce"
listed() { curl -sf -o /dev/null "$URL/services/$N"; }
poll_until 10 listed; ok $? "service listed"

for proto in http1.1 http2-prior-knowledge; do
    c=(--"$proto")
    req "${c[@]}" "$URL/cache/stats"; st=$BODY
    is "$HTTP_STATUS" 200 "[$proto] GET /cache/stats: 200"
    jq -e '(.services|type)=="number" and (.metrics|type)=="number" and (.cache_version|type)=="number"
           and has("last_refresh") and (.refreshes|type)=="number" and (.events_received|type)=="number"
           and has("last_event_time") and (.docker.state=="connected") and (.docker.api_version|test("^1\\."))' \
        <<<"$st" >/dev/null
    ok $? "[$proto] stats carry every field: $(jq -c . <<<"$st")"
    before=$(jq .refreshes <<<"$st")

    req "${c[@]}" -X POST "$URL/cache/refresh"; r=$BODY
    is "$HTTP_STATUS" 200 "[$proto] POST /cache/refresh: 200"
    is "$(jq -r ".stats.refreshes > $before" <<<"$r")" true "[$proto] refresh is done when it answers"

    req "${c[@]}" "$URL/cache/refresh"
    is "$HTTP_STATUS" 405 "[$proto] GET /cache/refresh: 405"

    req "${c[@]}" -X POST "$URL/cache/clear"; cl=$BODY
    is "$HTTP_STATUS" 200 "[$proto] POST /cache/clear: 200"
    jq -e '.cleared.services >= 1' <<<"$cl" >/dev/null; ok $? "[$proto] clear says what it cleared: $(jq -c .cleared <<<"$cl")"
    is "$(curl -s "$URL/services" | jq .count)" 0 "[$proto] the cache is empty after clear"

    req "${c[@]}" -X POST "$URL/cache/refresh"
    poll_until 5 listed; ok $? "[$proto] the next refresh repopulates it"

    req "${c[@]}" "$URL/health"; h=$BODY
    is "$HTTP_STATUS" 200 "[$proto] /health 200"
    is "$(jq -r .status <<<"$h")" healthy "[$proto] healthy"
    jq -e '.cache and .publisher.status == "disabled" and has("last_refresh") and (.reasons|length)==0' \
        <<<"$h" >/dev/null
    ok $? "[$proto] health carries cache stats, publisher, last refresh"
done
done_testing
