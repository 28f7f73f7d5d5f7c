#!/usr/bin/env bash
# Discovery against the real swarm, over HTTP/1.1 and h2c (prior knowledge):
# exactly the labelled services are listed, with their parsed config; bad
# labels are reported in config_errors; /services/{name}, 404, 405, HEAD.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

P=$SR_PREFIX
create_service good --label autoscaler.enabled=true --label autoscaler.metric=memory \
    --label autoscaler.memory.threshold=80 --label autoscaler.min=2 --label autoscaler.max=5 \
    --label com.docker.stack.namespace=teststack --replicas 1 local/busybox:1 sleep 1000000
ok $? "created labelled service ${P}good"
create_service plain --replicas 0 local/busybox:1 sleep 1000000
ok $? "created unlabelled service ${P}plain"
create_service off --label autoscaler.enabled=false --replicas 0 local/busybox:1 sleep 1000000
ok $? "created service ${P}off with autoscaler.enabled=false"
create_service bad --label autoscaler.enabled=true --label autoscaler.max=abc \
    --label autoscaler.metric=disk --label autoscaler.cpu.threshold=150 --replicas 0 \
    local/busybox:1 sleep 1000000
ok $? "created service ${P}bad with bad labels"
create_service minmax --label autoscaler.enabled=true --label autoscaler.min=5 \
    --label autoscaler.max=2 --mode global local/busybox:1 sleep 1000000
ok $? "created global service ${P}minmax with min > max"

create_service yes --label autoscaler.enabled=yes --replicas 0 local/busybox:1 sleep 1000000
ok $? "created service ${P}yes with autoscaler.enabled=yes"

start_registry discovery REFRESH_INTERVAL_SEC=1
ok $? "registry started on port $REG_PORT"
URL="http://127.0.0.1:$REG_PORT"

listed() {
    curl -sf "$URL/services" | jq -e --arg p "$P" \
        '[.services[].name | select(startswith($p))] | length == 3'
}
poll_until 15 listed; ok $? "the three labelled services are listed"

# autoscaler.enabled=yes: left out, and said once (not at every refresh).
warned() { grep -c "service ${P}yes: autoscaler.enabled=\"yes\" is neither true nor false" "$REG_LOG"; }
warned_once() { [[ $(warned) -ge 1 ]]; }
poll_until 5 warned_once; ok $? "a WARNING names ${P}yes and its autoscaler.enabled value"
resyncs() { metric "$URL" swarm_registry_resyncs_total; }
r0=$(resyncs)
two_more() { [[ $(resyncs) -ge $((r0 + 2)) ]]; }
poll_until 10 two_more; ok $? "two more full refreshes ran"
is "$(warned)" 1 "... and the warning was not repeated"
grep "${P}yes" "$REG_LOG" | grep -q WARNING; ok $? "logged at WARNING"

for proto in http1.1 http2-prior-knowledge; do
    c=(--"$proto")
    req "${c[@]}" -D "$SR_TMP/headers" "$URL/services"; body=$BODY
    is "$HTTP_STATUS" 200 "[$proto] GET /services: 200"
    ver=$(curl -s -o /dev/null -w '%{http_version}' "${c[@]}" "$URL/services")
    if [[ $proto == http1.1 ]]; then want=1.1; else want=2; fi
    is "$ver" "$want" "[$proto] spoke HTTP/$want"
    grep -qi '^content-type: application/json' "$SR_TMP/headers"; ok $? "[$proto] JSON content type"
    len=$(grep -i '^content-length:' "$SR_TMP/headers" | tr -dc 0-9)
    is "$len" "$(printf '%s' "$body" | wc -c)" "[$proto] Content-Length matches the body"

    names=$(jq -r --arg p "$P" '[.services[].name | select(startswith($p))] | sort | join(",")' <<<"$body")
    is "$names" "${P}bad,${P}good,${P}minmax" "[$proto] exactly the labelled services"
    is "$(jq -r '.count == (.services | length)' <<<"$body")" true "[$proto] count matches"
    jq -e '.cache_version >= 1' <<<"$body" >/dev/null; ok $? "[$proto] cache_version present"

    req "${c[@]}" "$URL/services/${P}good"; good=$BODY
    is "$HTTP_STATUS" 200 "[$proto] GET /services/{name}: 200"
    is "$(jq -c '.autoscaler' <<<"$good")" \
        '{"enabled":true,"metric":"memory","cpu_threshold":70,"memory_threshold":80,"min_replicas":2,"max_replicas":5}' \
        "[$proto] parsed autoscaler config (defaults for missing labels)"
    is "$(jq -r '.name, .image, .mode, .stack, (.config_errors|length)' <<<"$good" | paste -sd' ')" \
        "${P}good local/busybox:1 replicated teststack 0" "[$proto] name, image, mode, stack, no errors"
    is "$(jq -r '.id == ($id)' --arg id "$(docker service inspect -f '{{.ID}}' "${P}good")" <<<"$good")" \
        true "[$proto] id is Docker's service ID"
    is "$(jq -r '.replicas.desired' <<<"$good")" 1 "[$proto] desired replicas"
    is "$(jq -r '.labels["autoscaler.metric"]' <<<"$good")" memory "[$proto] labels carried"
    jq -e '.created_at and .updated_at and (.version_index > 0)' <<<"$good" >/dev/null
    ok $? "[$proto] timestamps and version index"

    req "${c[@]}" "$URL/services/${P}bad"; bad=$BODY
    is "$HTTP_STATUS" 200 "[$proto] service with bad labels is still listed"
    is "$(jq -c '[.autoscaler.metric, .autoscaler.cpu_threshold, .autoscaler.max_replicas]' <<<"$bad")" \
        '["cpu",70,2]' "[$proto] bad fields fall back to defaults"
    is "$(jq -r '[.config_errors[].label] | sort | join(",")' <<<"$bad")" \
        "autoscaler.cpu.threshold,autoscaler.max,autoscaler.metric" "[$proto] config_errors names each bad label"
    jq -e '.config_errors | all(.value and .error and (.used != null))' <<<"$bad" >/dev/null
    ok $? "[$proto] each config error has value, error and the value used"

    req "${c[@]}" "$URL/services/${P}minmax"; mm=$BODY
    is "$(jq -r '.mode' <<<"$mm")" global "[$proto] global mode"
    jq -e '(.config_errors | length) >= 1 and .autoscaler.min_replicas <= .autoscaler.max_replicas' \
        <<<"$mm" >/dev/null
    ok $? "[$proto] min > max reported, and the used values are consistent"

    req "${c[@]}" "$URL/services/${P}plain"; nf=$BODY
    is "$HTTP_STATUS" 404 "[$proto] unlabelled service: 404"
    jq -e '.error' <<<"$nf" >/dev/null; ok $? "[$proto] 404 body is JSON with an error"
    req "${c[@]}" "$URL/no/such/path"
    is "$HTTP_STATUS" 404 "[$proto] unknown path: 404"

    req "${c[@]}" -X DELETE -D "$SR_TMP/h405" "$URL/services"
    is "$HTTP_STATUS" 405 "[$proto] DELETE /services: 405"
    grep -qi '^allow: .*GET' "$SR_TMP/h405"; ok $? "[$proto] 405 carries Allow"

    req "${c[@]}" -I "$URL/services"; printf %s "$BODY" >"$SR_TMP/head"
    is "$HTTP_STATUS" 200 "[$proto] HEAD /services: 200"
    req "${c[@]}" -I "$URL/health"
    is "$HTTP_STATUS" 200 "[$proto] HEAD /health: 200"

    req "${c[@]}" "$URL/health"; h=$BODY
    is "$HTTP_STATUS" 200 "[$proto] /health: 200 with a working swarm"
    is "$(jq -r '.docker.state' <<<"$h")" connected "[$proto] /health docker connected"
done

# Names with characters that need percent-encoding are decoded.
req "$URL/services/${P}go%6fd"
is "$HTTP_STATUS" 200 "percent-encoded name is decoded"

# A removed service leaves the list (periodic refresh here; events come later).
docker service rm "${P}bad" >/dev/null
gone() { curl -sf "$URL/services/${P}bad" >/dev/null && return 1; return 0; }
poll_until 10 gone; ok $? "a removed service leaves the cache"

# A label value holding \u0000 (the CLI cannot set one; the API can) used
# to fail every full refresh: the service is listed, and so are the others.
SR_SERVICES+=("${P}nul")
curl -s --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' \
    -d '{"Name":"'"${P}nul"'","Labels":{"autoscaler.enabled":"true","note":"a\u0000b"},
         "TaskTemplate":{"ContainerSpec":{"Image":"local/busybox:1"}},
         "Mode":{"Replicated":{"Replicas":0}}}' \
    http://localhost/v1.41/services/create >/dev/null
nul_listed() { curl -sf "$URL/services/${P}nul" | jq -e '.labels.note == "a\u0000b"' >/dev/null; }
poll_until 10 nul_listed; ok $? "a service with NUL in a label value is listed, the value intact"
r0=$(resyncs)
poll_until 10 two_more; ok $? "full refreshes go on with it"
curl -sf "$URL/services/${P}good" >/dev/null; ok $? "... and the other services stay listed"
is "$(curl -s "$URL/health" | jq -r .docker.state)" connected "... and Docker is still reported connected"

done_testing
