#!/usr/bin/env bash
# Prometheus (issue 8): GET /metrics in the text format (our checker and
# promtool), per-service values after a metrics round, GET /sd/prometheus,
# and a real Prometheus (Debian's) on loopback that scrapes /metrics (up is
# 1, read through its HTTP API) and picks up the targets with http_sd.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
PY=/usr/bin/python3
CLIENTS="$SR_SRCDIR/tests/integration/watch_clients.py"

start_registry prom METRICS_REFRESH_INTERVAL_SEC=2
ok $? "registry started (metrics every 2 s)"
URL="http://127.0.0.1:$REG_PORT"
N="${SR_PREFIX}prom"
STACK="${SR_PREFIX}stack"
create_service prom --label autoscaler.enabled=true --label autoscaler.metrics.port=9100 \
    --label autoscaler.metrics.path=/m --label "com.docker.stack.namespace=$STACK" \
    --replicas 1 local/busybox:1 sleep 1000000
create_service noport --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000
sampled() { curl -sf "$URL/services/$N/metrics" | jq -e '.containers_sampled >= 1'; }
poll_until 60 sampled; ok $? "the service's container was sampled"

OUT=$($PY "$CLIENTS" prom-check --port "$REG_PORT")
jq -e '.status == 200 and .type == "text/plain; version=0.0.4; charset=utf-8"' <<<"$OUT" >/dev/null
ok $? "GET /metrics: 200, text/plain; version=0.0.4"
jq -e '.problems == []' <<<"$OUT" >/dev/null; ok $? "GET /metrics parses (format checker): $(jq -c .problems <<<"$OUT")"
S() { jq -r --arg k "$1" '.samples[$k] // "absent"' <<<"$OUT"; }
L="{service=\"$N\",stack=\"$STACK\"}"
awk -v v="$(S "swarm_registry_service_memory_usage_bytes$L")" 'BEGIN{exit !(v+0 > 0)}'
ok $? "per service: memory bytes $(S "swarm_registry_service_memory_usage_bytes$L")"
awk -v v="$(S "swarm_registry_service_cpu_usage_ratio$L")" 'BEGIN{exit !(v != "absent" && v+0 >= 0)}'
ok $? "per service: cpu ratio $(S "swarm_registry_service_cpu_usage_ratio$L")"
awk -v v="$(S "swarm_registry_service_memory_usage_ratio$L")" 'BEGIN{exit !(v != "absent" && v+0 >= 0 && v+0 <= 1)}'
ok $? "per service: memory ratio $(S "swarm_registry_service_memory_usage_ratio$L")"
is "$(S "swarm_registry_service_replicas_running$L")" 1 "per service: replicas running"
is "$(S "swarm_registry_service_containers_sampled$L")" 1 "per service: containers sampled"
awk -v v="$(S 'swarm_registry_cache_services')" 'BEGIN{exit !(v+0 >= 2)}'; ok $? "cache services"
awk -v v="$(S 'swarm_registry_docker_events_received_total')" 'BEGIN{exit !(v+0 > 0)}'; ok $? "docker events received"
for e in services tasks container_stats info; do
    awk -v v="$(S "swarm_registry_docker_api_requests_total{endpoint=\"$e\"}")" 'BEGIN{exit !(v+0 > 0)}'
    ok $? "docker API calls counted: $e $(S "swarm_registry_docker_api_requests_total{endpoint=\"$e\"}")"
done
is "$(S 'swarm_registry_docker_api_errors_total{endpoint="services"}')" 0 "no failed services call"
D='swarm_registry_docker_api_request_duration_seconds'
is "$(S "${D}_count{endpoint=\"services\"}")" "$(S 'swarm_registry_docker_api_requests_total{endpoint="services"}')" \
    "every services call timed"
# A one-shot stats call waits for Docker's second sample: about 1-2 s.
awk -v s="$(S "${D}_sum{endpoint=\"container_stats\"}")" -v n="$(S "${D}_count{endpoint=\"container_stats\"}")" \
    'BEGIN{exit !(n > 0 && s / n > 0.1 && s / n < 10)}'
ok $? "container stats calls take their time: $(S "${D}_sum{endpoint=\"container_stats\"}") s in $(S "${D}_count{endpoint=\"container_stats\"}")"
is "$(S "${D}_count{endpoint=\"events\"}")" absent "the event stream has no duration"
is "$(S 'swarm_registry_docker_api_requests_total{endpoint="other"}')" 0 "every call has a known endpoint"
is "$(S 'swarm_registry_docker_up')" 1 "docker up"
awk -v v="$(S 'swarm_registry_http_requests_total{endpoint="/services/{name}/metrics",method="GET",code="200"}')" \
    'BEGIN{exit !(v+0 >= 1)}'; ok $? "requests counted by endpoint, method and code"
is "$(S 'swarm_registry_publisher_enabled')" 0 "publisher disabled: enabled 0"
curl -s -o /dev/null "$URL/nope"
OUT=$($PY "$CLIENTS" prom-check --port "$REG_PORT")
is "$(S 'swarm_registry_http_requests_total{endpoint="other",method="GET",code="404"}')" 1 "a 404 is counted"
if command -v promtool >/dev/null; then
    curl -s "$URL/metrics" | promtool check metrics >"$SR_TMP/promtool.out" 2>&1
    ok $? "promtool check metrics: no problem $(tr '\n' ' ' <"$SR_TMP/promtool.out")"
fi

req "$URL/sd/prometheus"
is "$HTTP_STATUS" 200 "GET /sd/prometheus: 200"
G=$(jq -c --arg t "$N:9100" '[.[] | select(.targets == [$t])]' <<<"$BODY")
is "$(jq length <<<"$G")" 1 "sd: one target group for $N:9100"
is "$(jq -r '.[0].labels.__metrics_path__' <<<"$G")" /m "sd: __metrics_path__ from autoscaler.metrics.path"
is "$(jq -r '.[0].labels.__meta_swarm_service_name' <<<"$G")" "$N" "sd: __meta_swarm_service_name"
is "$(jq -r '.[0].labels.__meta_swarm_stack' <<<"$G")" "$STACK" "sd: __meta_swarm_stack"
is "$(jq -r '.[0].labels.__meta_swarm_autoscaler_metric' <<<"$G")" cpu "sd: __meta_swarm_autoscaler_metric"
jq -e --arg n "${SR_PREFIX}noport" 'all(.[]; .labels.__meta_swarm_service_name != $n)' <<<"$BODY" >/dev/null
ok $? "sd: a service without autoscaler.metrics.port is not a target"

# A real Prometheus.
if ! command -v prometheus >/dev/null; then
    for t in "up == 1" "per-service series" "http_sd targets" "__meta_swarm_ labels"; do
        skip "prometheus: $t" "Debian's prometheus package is not installed"
    done
    done_testing
    exit
fi
PPORT=$(free_port)
cat >"$SR_TMP/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: registry
    static_configs: [{targets: ["127.0.0.1:$REG_PORT"]}]
  - job_name: swarm
    http_sd_configs: [{url: "http://127.0.0.1:$REG_PORT/sd/prometheus", refresh_interval: 1s}]
YML
prometheus --config.file="$SR_TMP/prometheus.yml" --storage.tsdb.path="$SR_TMP/tsdb" \
    --web.listen-address="127.0.0.1:$PPORT" >"$SR_TMP/prometheus.log" 2>&1 &
SR_PIDS+=($!)
PURL="http://127.0.0.1:$PPORT"
up1() { curl -sf "$PURL/api/v1/query" --data-urlencode 'query=up{job="registry"}' |
        jq -e '.data.result[0].value[1] == "1"'; }
poll_until 30 up1; ok $? "prometheus scrapes /metrics: up{job=\"registry\"} == 1"
mem() { curl -sf "$PURL/api/v1/query" --data-urlencode "query=swarm_registry_service_memory_usage_bytes{service=\"$N\"}" |
        jq -e '(.data.result[0].value[1] | tonumber) > 0'; }
poll_until 15 mem; ok $? "prometheus has the per-service memory series"
sd() { curl -sf "$PURL/api/v1/targets" | jq -e --arg a "$N:9100" \
        '[.data.activeTargets[] | select(.labels.job == "swarm" and .discoveredLabels.__address__ == $a and (.scrapeUrl | endswith("/m")))] | length == 1'; }
poll_until 15 sd; ok $? "prometheus http_sd picked up $N:9100 (scrape URL ending in /m)"
meta() { curl -sf "$PURL/api/v1/targets" | jq -e --arg a "$N:9100" --arg n "$N" --arg s "$STACK" \
        '[.data.activeTargets[] | select(.discoveredLabels.__address__ == $a) | .discoveredLabels]
         | length >= 1 and all(.__meta_swarm_service_name == $n and .__meta_swarm_stack == $s)'; }
poll_until 10 meta; ok $? "prometheus sees the __meta_swarm_ labels"
kill -TERM "$REG_PID"; wait "$REG_PID"; is $? 0 "registry exits 0"
! grep -E "ERROR|Sanitizer|runtime error" "$REG_LOG" >/dev/null; ok $? "no errors or sanitizer reports"

# The same engine through tcp:// with an address libcurl rewrites (127.1 is
# 127.0.0.1 in its effective URL): every call still gets its endpoint.
FWD="$SR_TMP/forward.port"
$PY "$SR_SRCDIR/tests/lib/unix_forward.py" /var/run/docker.sock >"$FWD" 2>/dev/null &
SR_PIDS+=($!)
poll_until 5 test -s "$FWD"; ok $? "a TCP forwarder to the engine's socket"
start_registry prom-tcp DOCKER_BASE_URL="tcp://127.1:$(cat "$FWD")"
ok $? "registry started with DOCKER_BASE_URL=tcp://127.1:PORT"
tcp_synced() {
    OUT=$($PY "$CLIENTS" prom-check --port "$REG_PORT")
    [[ $(S 'swarm_registry_docker_up') == 1 && $(S 'swarm_registry_docker_api_requests_total{endpoint="services"}') != 0 ]]
}
poll_until 10 tcp_synced; ok $? "docker up through tcp://, services listed"
is "$(S 'swarm_registry_docker_api_requests_total{endpoint="other"}')" 0 "every call has its endpoint"
awk -v v="$(S 'swarm_registry_docker_api_requests_total{endpoint="info"}')" 'BEGIN{exit !(v+0 >= 1)}'
ok $? "the info call is counted as such"
kill -TERM "$REG_PID"; wait "$REG_PID"; is $? 0 "registry exits 0"
done_testing
