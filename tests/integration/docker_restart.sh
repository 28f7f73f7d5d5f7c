#!/usr/bin/env bash
# Restart the Docker engine under a running registry (a private engine in its
# own network namespace, so no other daemon is disturbed): the registry never
# exits, /health goes unhealthy then healthy again, and a service created while
# the engine was restarting is listed within 5 s of the engine answering.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
source "$SR_SRCDIR/tests/lib/private_dockerd.sh"
trap 'pd_cleanup; cleanup_all' EXIT

pd_start; ok $? "private dockerd answers"
pd_swarm; ok $? "private swarm initialised"
pd_docker service create --detach --name "${SR_PREFIX}one" --label autoscaler.enabled=true \
    --replicas 0 local/busybox:1 sleep 1000000 >/dev/null 2>&1
ok $? "service one created"

start_registry restart DOCKER_BASE_URL="unix://$PD_SOCK" REFRESH_INTERVAL_SEC=3600
URL="http://127.0.0.1:$REG_PORT"
status() { curl -s "$URL/health" | jq -r .status; }
healthy() { [[ $(status) == healthy ]]; }
unhealthy() { [[ $(status) == unhealthy ]]; }
listed() { curl -sf -o /dev/null "$URL/services/$1"; }
poll_until 10 healthy; ok $? "healthy against the private engine"
poll_until 5 listed "${SR_PREFIX}one"; ok $? "service one listed"

pd_stop
poll_until 10 unhealthy; ok $? "engine down: /health unhealthy"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health"); is "$code" 503 "... with HTTP 503"
is "$(curl -s "$URL/services" | jq -r '[.services[].name] | index("'"${SR_PREFIX}one"'") != null')" true \
    "the cache keeps serving what it knew"

pd_start; ok $? "engine restarted"
# Created right after the engine answers, before the registry has necessarily reconnected.
pd_docker service create --detach --name "${SR_PREFIX}two" --label autoscaler.enabled=true \
    --replicas 0 local/busybox:1 sleep 1000000 >/dev/null 2>&1
ok $? "service two created while the registry reconnects"
poll_ms 5000 50 listed "${SR_PREFIX}two"; ok $? "service two listed within 5 s (${POLL_MS} ms)"
poll_until 10 healthy; ok $? "/health healthy again"
kill -0 "$REG_PID"; ok $? "the registry never exited"

# A change made while the engine is down and the registry is disconnected.
pd_stop
poll_until 10 unhealthy; ok $? "down again"
pd_start
pd_docker service rm "${SR_PREFIX}one" >/dev/null 2>&1
gone() { ! listed "${SR_PREFIX}one"; }
poll_ms 5000 50 gone; ok $? "a service removed around the restart is gone within 5 s (${POLL_MS} ms)"
done_testing
