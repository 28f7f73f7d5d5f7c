#!/usr/bin/env bash
# Docker unreachable: the registry stays up, /health says so (503, unhealthy,
# with the reason), the API still answers, and it keeps retrying.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

start_registry down DOCKER_BASE_URL="unix://$SR_TMP/no-such.sock" REFRESH_INTERVAL_SEC=1
ok $? "registry serves with a missing docker socket"

has_reason() {
    req "http://127.0.0.1:$REG_PORT/health"; printf %s "$BODY" >"$SR_TMP/h.json"
    [[ $HTTP_STATUS == 503 ]] && jq -e '.status == "unhealthy" and
        (.reasons | map(test("docker unreachable")) | any)' "$SR_TMP/h.json"
}
poll_until 5 has_reason; ok $? "/health: 503 unhealthy, reason 'docker unreachable'"
diag "$(cat "$SR_TMP/h.json")"
is "$(jq -r .docker.state "$SR_TMP/h.json")" unreachable "/health docker.state"

req "http://127.0.0.1:$REG_PORT/services"; body=$BODY
is "$HTTP_STATUS" 200 "/services answers while docker is down"
is "$(jq -r .count <<<"$body")" 0 "... with an empty list"

# It retries (with backoff) rather than giving up: several attempts logged,
# and the process is still alive.
grep -c 'logger=docker' "$REG_LOG" >/dev/null; ok $? "the failure is logged by the docker adapter"
retries() { (( $(grep -c 'next attempt in' "$REG_LOG") >= 2 )); }
poll_until 8 retries; ok $? "it retries: $(grep 'next attempt in' "$REG_LOG" | head -n 2 | cut -c1-160 | paste -sd'|')"
kill -0 "$REG_PID"; ok $? "still running"

# A TCP URL to a closed port behaves the same.
port=$(free_port)
start_registry down2 DOCKER_BASE_URL="tcp://127.0.0.1:$port"
poll_until 5 has_reason; ok $? "tcp:// to a closed port: unhealthy, docker unreachable"
done_testing
