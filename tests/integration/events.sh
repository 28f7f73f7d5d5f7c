#!/usr/bin/env bash
# The live cache: with REFRESH_INTERVAL_SEC=3600 only Docker events can explain
# what happens. Each change must show within 1 s; a task's end within 5 s, since
# Docker counts it only a moment after the container's die event.
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

# A task's container dies and nothing restarts it: the refresh made on the die
# event still gets running 1 from Docker, so only its follow-ups can see 0.
D="${SR_PREFIX}die"
create_service die --label autoscaler.enabled=true --replicas 1 --restart-condition none \
    local/busybox:1 sleep 1000000
running_is() { [[ $(curl -sf "$URL/services/$D" | jq -r .replicas.running) == "$1" ]]; }
poll_until 30 running_is 1; ok $? "service ${D} runs its task"
cid=$(docker ps -q --filter "label=com.docker.swarm.service.name=$D")
docker kill "$cid" >/dev/null 2>&1; ok $? "killed its container ${cid}"
poll_until 5 running_is 0
ok $? "a dead task's container shows as running 0 within 5 s (${POLL_MS} ms)"

st=$(curl -sf "$URL/cache/stats")
jq -e '.events_received > 0 and .refreshes <= 2' <<<"$st" >/dev/null
ok $? "events counted; no periodic refresh explains it ($(jq -c '{events_received, refreshes}' <<<"$st"))"
done_testing
