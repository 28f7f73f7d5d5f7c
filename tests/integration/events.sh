#!/usr/bin/env bash
# The live cache: with REFRESH_INTERVAL_SEC=3600 only Docker events can explain
# what happens. Each change must show within 1 s.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

start_registry events REFRESH_INTERVAL_SEC=3600
ok $? "registry started"
URL="http://127.0.0.1:$REG_PORT"
stream_up() { curl -sf "$URL/cache/stats" | jq -e '.docker.events_connected == true'; }
poll_until 10 stream_up; ok $? "events stream connected"
N="${SR_PREFIX}ev"

field() { curl -sf "$URL/services/$N" | jq -r "$1"; }
listed() { curl -sf -o /dev/null "$URL/services/$N"; }
absent() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/services/$N") == 404 ]]; }

create_service ev --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
poll_ms 1000 10 listed; ok $? "created labelled service listed within 1 s (${POLL_MS} ms)"

docker service update --detach --label-add autoscaler.max=7 "$N" >/dev/null 2>&1
max7() { [[ $(field .autoscaler.max_replicas) == 7 ]]; }
poll_ms 1000 10 max7; ok $? "label update reflected within 1 s (${POLL_MS} ms)"

docker service scale --detach "$N=2" >/dev/null 2>&1
d2() { [[ $(field .replicas.desired) == 2 ]]; }
poll_ms 1000 10 d2; ok $? "scaling changes desired replicas within 1 s (${POLL_MS} ms)"

running2() { [[ $(field .replicas.running) == 2 ]]; }
poll_until 20 running2; ok $? "running replicas follow the tasks (container events)"

docker service update --detach --label-add autoscaler.enabled=false "$N" >/dev/null 2>&1
poll_ms 1000 10 absent; ok $? "autoscaler.enabled=false removes it within 1 s (${POLL_MS} ms)"

docker service update --detach --label-add autoscaler.enabled=true "$N" >/dev/null 2>&1
poll_ms 1000 10 listed; ok $? "regaining the label brings it back within 1 s (${POLL_MS} ms)"

docker service update --detach --label-rm autoscaler.enabled "$N" >/dev/null 2>&1
poll_ms 1000 10 absent; ok $? "removing the label removes it within 1 s (${POLL_MS} ms)"

docker service update --detach --label-add autoscaler.enabled=true "$N" >/dev/null 2>&1
poll_ms 1000 10 listed; ok $? "listed again"
docker service rm "$N" >/dev/null 2>&1
poll_ms 1000 10 absent; ok $? "removing the service removes it within 1 s (${POLL_MS} ms)"

st=$(curl -sf "$URL/cache/stats")
jq -e '.events_received > 0 and .refreshes <= 2' <<<"$st" >/dev/null
ok $? "events counted; no periodic refresh explains it ($(jq -c '{events_received, refreshes}' <<<"$st"))"
done_testing
