#!/usr/bin/env bash
# Faults only a fake engine can make: a garbage line, a stream cut in the
# middle of a JSON object, an event for an unknown service id, an object split
# across chunks. The registry stays up and the cache stays correct.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

sock="$SR_TMP/fake.sock"; reqlog="$SR_TMP/requests.log"
/usr/bin/python3 "$SR_SRCDIR/tests/fake/fake_docker.py" "$sock" "$reqlog" 2>"$SR_TMP/fake.err" &
SR_PIDS+=($!)
poll_until 5 test -S "$sock"; ok $? "fake engine listening"

start_registry fake DOCKER_BASE_URL="unix://$sock" REFRESH_INTERVAL_SEC=3600
URL="http://127.0.0.1:$REG_PORT"
both() { curl -sf "$URL/services" | jq -e '[.services[].name] | sort == ["fake-a","fake-b"]'; }
poll_until 15 both; ok $? "after the cut stream, reconnect, unknown id and a split object: exactly fake-a and fake-b"
grep -q 'GET /v1.41/events?.*since=' "$reqlog"; ok $? "the reconnect resumes with since="
is "$(grep -c 'GET /v1.41/events' "$reqlog")" 2 "two event stream connections"
kill -0 "$REG_PID"; ok $? "registry still running"
curl -sf "$URL/services/ghost" >/dev/null; is $? 22 "the unknown id is not invented into the cache"
grep -qi 'garbage\|invalid\|parse' "$REG_LOG"; ok $? "the garbage line is logged"
done_testing
