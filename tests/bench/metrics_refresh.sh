#!/usr/bin/env bash
# metrics_refresh: the wall time of one metrics round against the real engine
# for N running containers (one service scaled to N, busybox sleep), next to N
# sequential `curl .../containers/ID/stats?stream=false` calls, and the ratio.
#
# usage: tests/bench/metrics_refresh.sh BINARY [N...]      (default N = 1 10 50)
#
# Per N, a fresh registry (METRICS_REFRESH_INTERVAL_SEC=3600, so nothing else
# runs meanwhile) is started once the N containers run: round_ms is its first
# round, from its own log ("metrics round: K containers in X ms"; K also counts
# other autoscaler-enabled services' containers on this host), cold
# connections included. When the binary has POST /services/{name}/metrics
# wired, post_ms is that request for the bench service alone (median of 3).
# Everything created is removed on exit.
set -u
SR_BIN=${1:?usage: metrics_refresh.sh BINARY [N...]}
shift
NS=("$@")
(( ${#NS[@]} )) || NS=(1 10 50)
SR_SRCDIR=${SR_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$SR_SRCDIR/tests/lib/registry.sh"

NAME="${SR_PREFIX}bench"
create_service bench --label autoscaler.enabled=true --replicas 0 local/busybox:1 sleep 1000000 ||
    { echo "cannot create $NAME" >&2; exit 1; }

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : int((v[NR/2]+v[NR/2+1])/2)}'; }
running_count() {
    docker ps -q --filter "label=com.docker.swarm.service.name=$NAME" --filter status=running | wc -l
}
sampled() { curl -sf "$URL/services/$NAME/metrics" | jq -e --argjson n "$1" '.containers_sampled == $n'; }
rounds_logged() { grep -c 'metrics round: ' "$REG_LOG"; }
has_running() { (( $(running_count) == $1 )); }
rounds_past() { (( $(rounds_logged) >= $1 )); }

printf '%6s %16s %16s %20s %8s\n' N round_ms post_ms sequential_curl_ms ratio
for n in "${NS[@]}"; do
    docker service scale --detach "$NAME=$n" >/dev/null 2>&1
    if ! poll_until 180 has_running "$n"; then
        echo "# N=$n: only $(running_count) containers running after 180 s" >&2
        continue
    fi
    start_registry "bench$n" METRICS_REFRESH_INTERVAL_SEC=3600 ||
        { echo "# N=$n: registry did not start" >&2; continue; }
    URL="http://127.0.0.1:$REG_PORT"
    if ! poll_until 30 rounds_past 1 || ! sampled "$n" >/dev/null; then
        echo "# N=$n: the first round did not sample $n containers" >&2
        stop_registry "$REG_PID"
        continue
    fi
    last=$(grep -o 'metrics round: .*' "$REG_LOG" | tail -n 1)
    round=$(awk '{print $6}' <<<"$last")

    post=-
    req -X POST "$URL/services/$NAME/metrics"
    if [[ $HTTP_STATUS == 200 ]]; then
        post=$(for i in 1 2 3; do
            t0=$(date +%s%N)
            curl -sf -X POST -o /dev/null "$URL/services/$NAME/metrics"
            ms_since "$t0"
        done | median)
    fi

    ids=$(docker ps -q --no-trunc --filter "label=com.docker.swarm.service.name=$NAME")
    t0=$(date +%s%N)
    for id in $ids; do
        curl -sf --unix-socket /var/run/docker.sock -o /dev/null \
            "http://localhost/containers/$id/stats?stream=false"
    done
    seq_ms=$(ms_since "$t0")
    stop_registry "$REG_PID"
    best=$round
    [[ $post != - ]] && best=$post
    printf '%6s %16s %16s %20s %7.1fx\n' "$n" "$round" "$post" "$seq_ms" \
        "$(awk -v a="$seq_ms" -v b="$best" 'BEGIN{print (b > 0) ? a / b : 0}')"
done
echo "# ratio = sequential / registry (POST when wired, else the round)"
echo "# last round logged: ${last:-none}"
