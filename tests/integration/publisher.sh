#!/usr/bin/env bash
# RabbitMQ events, end to end: the real binary, the real swarm, a private
# broker (tests/lib/rabbitmq.sh) and a real consumer bound with "#".
#   1. service.added / updated / removed with the right routing keys, AMQP
#      properties and bodies; health.check within its interval; GET /events.
#   2. broker down: /health degraded, 5 changes queue up and all arrive, in
#      order, after the broker is back; the registry never exits; SIGTERM
#      closes the AMQP connection cleanly.
#   3. RABBITMQ_OUTBOX_MAX=2: drops counted, a full services.updated follows.
#   4. wrong password: degraded with the reason, no crash, no busy loop.
#   5. a message over the broker's max_message_size: dropped and counted
#      (refused, max_message_bytes), and the changes behind it still arrive;
#      the limit is re-checked, and forgotten once the broker raised it.
#   6. a memory alarm: connection.blocked shows in /health and /events, and
#      the change held meanwhile arrives once the alarm clears.
# One broker serves every case (booting one takes ~5 s).
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
source "$SR_SRCDIR/tests/lib/rabbitmq.sh"

[[ -x $RMQ_BIN/rabbitmq-server ]] || skip_all "rabbitmq-server is not installed"
/usr/bin/python3 -c 'import pika' 2>/dev/null || skip_all "python3-pika is not installed"
trap 'cleanup_all; rmq_cleanup' EXIT

P=$SR_PREFIX
RFC3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$'

# Config: a malformed URL is a startup error naming the variable, not the password.
out=$(env ROLE=service-registry PORT="$(free_port)" RABBITMQ_URL="amqp://u:Pw$$x@h:99999/" \
    "$SR_BIN" 2>&1 >/dev/null)
is "$?" 2 "malformed RABBITMQ_URL: exit 2"
grep -q RABBITMQ_URL <<<"$out" && ! grep -q "Pw$$x" <<<"$out"
ok $? "... naming RABBITMQ_URL, without the password ($out)"

rmq_start || { echo "Bail out! cannot start rabbitmq-server"; exit 1; }
diag "broker $RMQ_NODE on port $RMQ_PORT booted in $RMQ_BOOT_MS ms"

# ---- helpers -----------------------------------------------------------------

# q FILE JQ-ARGS...: jq over the consumer's messages, as one array.
q() { local f=$1; shift; jq -s "$@" "$f"; }
# The first message on FILE with routing key KEY about service NAME.
first_msg() { q "$1" -c --arg k "$2" --arg n "$3" \
    '[.[] | select(.routing_key == $k and (.body.service.name? // "") == $n)][0]'; }
has_msg() { [[ $(first_msg "$@") != null ]]; }
pub_field() { curl -sf "$URL/events" | jq -r ".publisher.$1"; }
connected() { [[ $(pub_field status) == connected ]]; }
svc_field() { curl -sf "$URL/services/$1" | jq -r "$2"; }

# check_props MSG NAME: the AMQP properties every message must carry.
check_props() {
    local m=$1 what=$2 now
    now=$(date +%s)
    is "$(jq -r .properties.content_type <<<"$m")" application/json "$what: content_type"
    is "$(jq -r .properties.delivery_mode <<<"$m")" 2 "$what: delivery_mode 2 (persistent)"
    is "$(jq -r .properties.app_id <<<"$m")" service-registry "$what: app_id"
    [[ $(jq -r .properties.message_id <<<"$m") =~ ^[0-9a-f]{16}-[0-9]+$ ]]
    ok $? "$what: message_id <boot id>-<n>"
    local ts
    ts=$(jq -r .properties.timestamp <<<"$m")
    (( ts > now - 120 && ts <= now + 1 )); ok $? "$what: timestamp is now ($ts)"
    is "$(jq -r .body.event <<<"$m")" "$(jq -r .routing_key <<<"$m")" "$what: body.event = routing key"
    [[ $(jq -r .body.timestamp <<<"$m") =~ $RFC3339 ]]; ok $? "$what: body timestamp RFC 3339 UTC"
    # A change bumps the version; a health.check may come before any (an
    # engine with no labelled service leaves the cache at version 0).
    local min=1
    [[ $what == health.check ]] && min=0
    jq -e --argjson min "$min" '.body.cache_version | type == "number" and . >= $min' <<<"$m" >/dev/null
    ok $? "$what: cache_version"
}

# Waits until the registry's cache shows NAME's autoscaler.max_replicas = N.
wait_max() { local name=$1 n=$2; _max() { [[ $(svc_field "$name" .autoscaler.max_replicas) == "$n" ]]; }
    poll_until 10 _max; }

# ---- 1. events on the real swarm ----------------------------------------------

EX="${P}events"
MSGS="$SR_TMP/msgs.ndjson"
rmq_consume "$MSGS" "$EX"; ok $? "consumer bound to exchange $EX with #"

start_registry pub RABBITMQ_URL="$RMQ_URL" RABBITMQ_EXCHANGE="$EX" HEALTH_PUBLISH_INTERVAL_SEC=2 \
    REFRESH_INTERVAL_SEC=3600
ok $? "registry started"
URL="http://127.0.0.1:$REG_PORT"
poll_until 15 connected; ok $? "publisher connected"
ev=$(curl -sf "$URL/events")
is "$(jq -r .exchange <<<"$ev")" "$EX" "GET /events: exchange"
is "$(jq -r '[.events[].routing_key] | sort | join(",")' <<<"$ev")" \
    "health.check,metrics.{service_name},service.added,service.removed,service.updated,services.updated" \
    "GET /events: the six event types"
is "$(jq -r .publisher.broker <<<"$ev")" "amqp://$RMQ_USER@127.0.0.1:$RMQ_PORT/%2F" \
    "GET /events: broker address without password"
grep -q "$RMQ_PASS" <<<"$ev$(curl -s "$URL/health")"; is "$?" 1 "no password in /events or /health"

# health.check: one right after connecting, then every 2 s.
nh() { q "$MSGS" '[.[] | select(.routing_key == "health.check")] | length'; }
some_health() { (( $(nh) >= 1 )); }
poll_until 5 some_health; ok $? "a health.check right after connecting"
h0=$(nh)
more_health() { (( $(nh) > h0 )); }
poll_ms 3500 50 more_health; ok $? "health.check within the 2 s interval (${POLL_MS} ms)"
hm=$(q "$MSGS" -c '[.[] | select(.routing_key == "health.check")][-1]')
check_props "$hm" "health.check"
jq -e '.body.health.status | IN("healthy", "degraded", "unhealthy")' <<<"$hm" >/dev/null
ok $? "health.check carries the /health body"

create_service a --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
ok $? "created labelled service ${P}a"
poll_until 10 has_msg "$MSGS" service.added "${P}a"; ok $? "service.added arrives"
m=$(first_msg "$MSGS" service.added "${P}a")
check_props "$m" "service.added"
is "$(jq -r .body.service.id <<<"$m")" "$(docker service inspect -f '{{.ID}}' "${P}a")" \
    "service.added: the Docker service ID"
is "$(jq -c '.body.service | keys' <<<"$m")" "$(curl -sf "$URL/services/${P}a" | jq -c keys)" \
    "service.added: the record as GET /services/{name} shows it"
is "$(jq -r '.body.service.labels["autoscaler.enabled"]' <<<"$m")" true "service.added: labels"

docker service update --detach --label-add autoscaler.max=5 "${P}a" >/dev/null 2>&1
upd5() { q "$MSGS" -e --arg n "${P}a" 'any(.[]; .routing_key == "service.updated" and
    .body.service.name == $n and .body.service.autoscaler.max_replicas == 5)' >/dev/null; }
poll_until 10 upd5; ok $? "service.updated arrives with the new autoscaler.max"
m=$(first_msg "$MSGS" service.updated "${P}a")
check_props "$m" "service.updated"

# A metrics round produces metrics.<name> (when the build collects metrics).
mcode=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/services/${P}a/metrics")
if [[ $mcode == 200 ]]; then
    mets() { q "$MSGS" -e --arg k "metrics.${P}a" 'any(.[]; .routing_key == $k)' >/dev/null; }
    poll_until 10 mets; ok $? "metrics.${P}a arrives after a metrics round"
else
    echo "ok $((++_tap_n)) - metrics.${P}a after a metrics round # SKIP POST .../metrics answered $mcode"
fi

docker service rm "${P}a" >/dev/null 2>&1
poll_until 10 has_msg "$MSGS" service.removed "${P}a"; ok $? "service.removed arrives"
m=$(first_msg "$MSGS" service.removed "${P}a")
check_props "$m" "service.removed"
is "$(jq -r .body.service.name <<<"$m")" "${P}a" "service.removed: the record that left"

q "$MSGS" -e '[.[].properties.message_id] | length == (unique | length)' >/dev/null
ok $? "message_ids are unique"
q "$MSGS" -e '[.[] | select(.routing_key | startswith("service")) | .body.cache_version] | . == sort' \
    >/dev/null
ok $? "cache_version only grows along the stream"

# ---- 2. broker outage ---------------------------------------------------------

create_service b --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
poll_until 10 has_msg "$MSGS" service.added "${P}b"; ok $? "service.added for ${P}b"

rmq_stop; ok $? "broker stopped"
degraded() {
    req "$URL/health"
    [[ $HTTP_STATUS == 200 ]] &&
        jq -e '.status == "degraded" and any(.reasons[]; test("publisher"))' <<<"$BODY"
}
poll_until 10 degraded; ok $? "/health degraded: $(jq -c .reasons <<<"$BODY" 2>/dev/null)"
jq -e '.publisher.last_error | type == "string" and length > 0' <<<"$BODY" >/dev/null
ok $? "publisher.last_error says why"

for n in 2 3 4 5 6; do
    docker service update --detach --label-add autoscaler.max=$n "${P}b" >/dev/null 2>&1
    wait_max "${P}b" $n || diag "the cache did not see autoscaler.max=$n"
done
q5() { (( $(pub_field queued) >= 5 )); }
poll_until 5 q5; ok $? "5 changes queued while the broker is down (queued $(pub_field queued))"
kill -0 "$REG_PID"; ok $? "registry still running"

rmq_start; ok $? "broker started again (${RMQ_BOOT_MS} ms)"
# Deduplicated by message_id (at-least-once), in arrival order.
seq_b() { q "$MSGS" -c --arg n "${P}b" 'reduce .[] as $m ({seen: {}, out: []};
    if .seen[$m.properties.message_id] then . else .seen[$m.properties.message_id] = true |
    .out += [$m] end) | [.out[] | select(.routing_key == "service.updated" and
    .body.service.name == $n) | .body.service.autoscaler.max_replicas]'; }
all5() { jq -e '[2,3,4,5,6] - . == []' <<<"$(seq_b)" >/dev/null; }
poll_until 45 all5; ok $? "all 5 changes arrived after the reconnect ($(seq_b))"
jq -e '. == sort' <<<"$(seq_b)" >/dev/null; ok $? "... in order"
poll_until 10 connected; ok $? "publisher connected again"
jq -e '.publisher.connects >= 2' <(curl -sf "$URL/events") >/dev/null; ok $? "... a second connection"
kill -0 "$REG_PID"; ok $? "the registry never exited"

# SIGTERM: flush, then channel.close and connection.close (the broker logs
# "closing AMQP connection" for a clean close, "unexpectedly closed" otherwise).
lport=$(ss -tnpH state established "( dport = :$RMQ_PORT )" 2>/dev/null |
    grep "pid=$REG_PID," | awk '{print $3}' | sed 's/.*://' | head -1)
t0=$(date +%s%N)
stop_registry "$REG_PID"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
(( ms < 5000 )); ok $? "SIGTERM: stopped in $ms ms"
clean() { grep -h "closing AMQP connection .*127.0.0.1:$lport ->" "$RMQ_DIR"/log/*.log; }
if [[ -n $lport ]]; then
    poll_until 5 clean; ok $? "the broker saw a clean AMQP close (port $lport)"
    ! grep -h "127.0.0.1:$lport ->.*unexpectedly" "$RMQ_DIR"/log/*.log >/dev/null
    ok $? "... not a dropped TCP connection"
else
    ok 1 "found the registry's AMQP connection with ss"
fi

# ---- 3. overflow ----------------------------------------------------------------

EX2="${P}overflow"
MSGS2="$SR_TMP/msgs2.ndjson"
rmq_consume "$MSGS2" "$EX2"; ok $? "consumer bound to $EX2"
start_registry ovf RABBITMQ_URL="$RMQ_URL" RABBITMQ_EXCHANGE="$EX2" RABBITMQ_OUTBOX_MAX=2 \
    HEALTH_PUBLISH_INTERVAL_SEC=3600 REFRESH_INTERVAL_SEC=3600
ok $? "registry with RABBITMQ_OUTBOX_MAX=2 started"
URL="http://127.0.0.1:$REG_PORT"
poll_until 15 connected; ok $? "publisher connected"
rmq_stop; ok $? "broker stopped"
for n in 7 8 9 10 11; do
    docker service update --detach --label-add autoscaler.max=$n "${P}b" >/dev/null 2>&1
    wait_max "${P}b" $n || diag "the cache did not see autoscaler.max=$n"
done
dropped() { (( $(pub_field dropped) >= 3 )); }
poll_until 5 dropped; ok $? "drops counted in GET /events (dropped $(pub_field dropped))"
(( $(pub_field queued) <= 2 )); ok $? "the outbox holds at most 2 (queued $(pub_field queued))"
grep -q "outbox full" "$REG_LOG"; ok $? "the drop is logged"
rmq_start; ok $? "broker started again"
resynced() { q "$MSGS2" -e --arg n "${P}b" 'any(.[]; .routing_key == "services.updated" and
    any(.body.services[]; .name == $n and .autoscaler.max_replicas == 11))' >/dev/null; }
poll_until 45 resynced; ok $? "a full services.updated with the final state follows the reconnect"
m=$(q "$MSGS2" -c '[.[] | select(.routing_key == "services.updated")][-1]')
check_props "$m" "services.updated"
jq -e '.body.count == (.body.services | length)' <<<"$m" >/dev/null; ok $? "services.updated: count"
stop_registry "$REG_PID"

# ---- 4. wrong password ----------------------------------------------------------

BADPW="NotThePw$RANDOM$RANDOM"
start_registry badpw RABBITMQ_URL="amqp://$RMQ_USER:$BADPW@127.0.0.1:$RMQ_PORT" \
    RABBITMQ_EXCHANGE="$EX"
ok $? "registry with a wrong password serves"
URL="http://127.0.0.1:$REG_PORT"
refused() {
    req "$URL/health"
    [[ $HTTP_STATUS == 200 ]] &&
        jq -e '.status == "degraded" and any(.reasons[]; test("authentication refused"))' <<<"$BODY"
}
poll_until 10 refused; ok $? "/health degraded: $(jq -c .reasons <<<"$BODY" 2>/dev/null)"
is "$(pub_field status)" disconnected "GET /events: publisher disconnected"
pub_field last_error | grep -q ACCESS_REFUSED; ok $? "last_error: $(pub_field last_error)"
cpu() { awk '{print $14 + $15}' "/proc/$REG_PID/stat"; }
c0=$(cpu); sleep 3; c1=$(cpu)
(( c1 - c0 < 30 )); ok $? "no busy loop: $((c1 - c0)) CPU ticks in 3 s"
kill -0 "$REG_PID"; ok $? "still running"
grep -q "$BADPW" "$REG_LOG" <(curl -s "$URL/health") <(curl -s "$URL/events")
is "$?" 1 "the password appears nowhere (log, /health, /events)"

# ---- 5. a message over the broker's max_message_size ------------------------------

# Channels read the limit when they open: set it before the registry connects.
rmq_ctl eval 'application:set_env(rabbit, max_message_size, 4096).' >/dev/null
ok $? "broker max_message_size set to 4096"
EX3="${P}limits"
MSGS3="$SR_TMP/msgs3.ndjson"
rmq_consume "$MSGS3" "$EX3"; ok $? "consumer bound to $EX3"
start_registry big RABBITMQ_URL="$RMQ_URL" RABBITMQ_EXCHANGE="$EX3" \
    HEALTH_PUBLISH_INTERVAL_SEC=3600 REFRESH_INTERVAL_SEC=3600 RABBITMQ_LIMIT_RECHECK_SEC=2
ok $? "registry started"
URL="http://127.0.0.1:$REG_PORT"
poll_until 15 connected; ok $? "publisher connected"
create_service big --label autoscaler.enabled=true --label "filler=$(printf 'x%.0s' {1..5000})" \
    --replicas 0 local/busybox:1 sleep 1000000
ok $? "created ${P}big, whose record is over 4096 bytes"
poll_until 10 svc_field "${P}big" .name >/dev/null; ok $? "the registry caches it"
create_service small --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
ok $? "created ${P}small after it"
poll_until 30 has_msg "$MSGS3" service.added "${P}small"
ok $? "service.added of ${P}small arrives: the refused message holds nothing up"
has_msg "$MSGS3" service.added "${P}big"; is "$?" 1 "service.added of ${P}big is not delivered"
(( $(pub_field refused) >= 1 )); ok $? "refused counted in GET /events ($(pub_field refused))"
is "$(pub_field max_message_bytes)" 4096 "GET /events: max_message_bytes learned from the broker"
grep -q "dropped service.added (revision [0-9]*, [0-9]* bytes): the broker refuses messages over 4096" \
    "$REG_LOG"; ok $? "the drop is logged with the event, its size and the limit"
curl -sf "$URL/metrics" | grep -Eq '^swarm_registry_publisher_refused_total [1-9]'
ok $? "/metrics: swarm_registry_publisher_refused_total"
docker service rm "${P}small" >/dev/null 2>&1
poll_until 15 has_msg "$MSGS3" service.removed "${P}small"; ok $? "later changes keep flowing"

# The limit is re-checked every RABBITMQ_LIMIT_RECHECK_SEC (2 s here): the
# next message over it goes alone. The sleeps wait out that period.
big_max() { q "$MSGS3" -e --arg n "${P}big" --argjson m "$1" 'any(.[]; .routing_key ==
    "service.updated" and .body.service.name == $n and .body.service.autoscaler.max_replicas == $m)' \
    >/dev/null; }
refused_over() { (( $(pub_field refused) > $1 )); }
r0=$(pub_field refused)
sleep 3
docker service update --detach --label-add autoscaler.max=3 "${P}big" >/dev/null 2>&1
wait_max "${P}big" 3 || diag "the cache did not see autoscaler.max=3"
poll_until 15 refused_over "$r0"; ok $? "a re-check while the limit stands: refused again ($(pub_field refused))"
grep -q "re-checking the broker's limit of 4096 bytes with service.updated" "$REG_LOG"
ok $? "the re-check is logged"
is "$(pub_field max_message_bytes)" 4096 "the limit stands"
rmq_ctl eval 'application:set_env(rabbit, max_message_size, 134217728).' >/dev/null
ok $? "broker max_message_size back to its default"
rmq_ctl close_all_connections "new channels read the new limit" >/dev/null
connects_over() { (( $(pub_field connects) > $1 )); }
c0=$(pub_field connects)
poll_until 15 connects_over "$c0"; poll_until 15 connected; ok $? "reconnected"
sleep 3
docker service update --detach --label-add autoscaler.max=4 "${P}big" >/dev/null 2>&1
poll_until 20 big_max 4; ok $? "once the broker takes messages that size again, ${P}big's changes arrive"
is "$(pub_field max_message_bytes)" null "the learned limit is forgotten"
grep -q "the broker took a message over 4096 bytes" "$REG_LOG"; ok $? "... and that is logged"
stop_registry "$REG_PID"

# ---- 6. a resource alarm blocks publishing ----------------------------------------

start_registry blocked RABBITMQ_URL="$RMQ_URL" RABBITMQ_EXCHANGE="$EX3" \
    HEALTH_PUBLISH_INTERVAL_SEC=3600 REFRESH_INTERVAL_SEC=3600
ok $? "registry started"
URL="http://127.0.0.1:$REG_PORT"
poll_until 15 connected; ok $? "publisher connected"
rmq_ctl set_vm_memory_high_watermark 0.0000001 >/dev/null; ok $? "memory alarm raised"
# The broker blocks a connection when it next publishes: make a change.
docker service update --detach --label-add autoscaler.max=9 "${P}big" >/dev/null 2>&1
wait_max "${P}big" 9; ok $? "a change while the alarm is on: the cache has it"
blocked() {
    req "$URL/health"
    jq -e '.status == "degraded" and any(.reasons[]; startswith("publisher blocked by the broker"))' \
        <<<"$BODY" >/dev/null
}
poll_until 20 blocked; ok $? "/health degraded: $(jq -c .reasons <<<"$BODY" 2>/dev/null)"
pub_field blocked | grep -qi memory; ok $? "GET /events: blocked says why ($(pub_field blocked))"
is "$(pub_field status)" connected "... while the connection stays up"
curl -sf "$URL/metrics" | grep -q '^swarm_registry_publisher_blocked 1'
ok $? "/metrics: swarm_registry_publisher_blocked 1"
rmq_ctl set_vm_memory_high_watermark 0.4 >/dev/null; ok $? "memory alarm cleared"
unblocked() { [[ $(pub_field blocked) == null ]]; }
poll_until 20 unblocked; ok $? "GET /events: blocked is null again"
upd9() { q "$MSGS3" -e --arg n "${P}big" 'any(.[]; .routing_key == "service.updated" and
    .body.service.name == $n)' >/dev/null; }
# ${P}big's record is small enough for the default limit again.
poll_until 30 upd9; ok $? "the change held during the alarm arrives" || { diag "$(tail -30 "$REG_LOG")"; diag "$(q "$MSGS3" -c "[.[] | [.routing_key, .body.service.name?]]")"; }
stop_registry "$REG_PID"

done_testing
