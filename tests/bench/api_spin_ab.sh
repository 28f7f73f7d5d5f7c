#!/usr/bin/env bash
# What API_SPIN_USEC buys (issue 7): three servers side by side on the same
# CPU, the registry with its default spin, the registry with
# API_SPIN_USEC=0, and h2o serving the same bytes (tests/bench/api_lib.sh),
# against the client-bound lines of api_throughput.sh:
#   /health h2 -c 16 -m 10, /health h1 --h1 -c 16, /services h1 --h1 -c 16
# Each round runs a fixed number of requests against all three, in an order
# that rotates from round to round, so that the machine's drift falls on
# each server alike. Prints per line the median req/s of each and the
# medians of the rounds' ratios: spin/h2o, plain/h2o and spin/plain.
#
# usage: tests/bench/api_spin_ab.sh [--rounds N]  (default 12)
#   SR_BIN   as in api_throughput.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=12
while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N]" >&2; exit 2 ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds: a positive number" >&2; exit 2; }

source tests/bench/api_lib.sh

SPIN_PORT=$(free_port)
bench_start_registry "$SPIN_PORT" API_THREADS=1
PLAIN_PORT=$(free_port)
bench_start_registry "$PLAIN_PORT" API_THREADS=1 API_SPIN_USEC=0
bench_snapshot "$SPIN_PORT"
H2O_PORT=$(free_port)
bench_start_h2o "$H2O_PORT" 1
echo "# registry: $SR_BIN, default spin on :$SPIN_PORT, API_SPIN_USEC=0 on :$PLAIN_PORT"

rps() { # port path n args...: h2load's req/s (0 if anything failed)
    local port=$1 path=$2 n=$3
    shift 3
    local out
    out=$( (on_cpus "$CLIENT_CPUS" h2load -n "$n" "$@" "http://127.0.0.1:$port$path") 2>&1)
    if ! grep -q "requests: $n total, $n started, $n done, $n succeeded" <<<"$out"; then
        echo "h2load failed against :$port$path ($*):" >&2
        tail -5 <<<"$out" >&2
        echo 0
        return
    fi
    grep -o 'finished in [^,]*, [0-9.]* req/s' <<<"$out" | awk '{print $(NF-1)}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }'; }

printf '\n%-9s %-14s %11s %11s %11s %9s %9s %10s\n' path line "spin req/s" "plain req/s" \
    "h2o req/s" spin/h2o plain/h2o spin/plain
lines=("/health|h2 -c 16 -m 10|1200000|-c 16 -m 10" "/health|h1 --h1 -c 16|300000|--h1 -c 16"
    "/services|h1 --h1 -c 16|150000|--h1 -c 16")
ports=("$SPIN_PORT" "$PLAIN_PORT" "$H2O_PORT")
for l in "${lines[@]}"; do
    IFS='|' read -r path name n argstr <<<"$l"
    read -r -a args <<<"$argstr"
    s=() p=() h=() sh=() ph=() sp=()
    for i in $(seq 1 "$ROUNDS"); do
        declare -A got=()
        for k in 0 1 2; do
            port=${ports[$(((i + k) % 3))]}
            got[$port]=$(rps "$port" "$path" "$n" "${args[@]}")
        done
        s+=("${got[$SPIN_PORT]}") p+=("${got[$PLAIN_PORT]}") h+=("${got[$H2O_PORT]}")
        sh+=("$(ratio "${got[$SPIN_PORT]}" "${got[$H2O_PORT]}")")
        ph+=("$(ratio "${got[$PLAIN_PORT]}" "${got[$H2O_PORT]}")")
        sp+=("$(ratio "${got[$SPIN_PORT]}" "${got[$PLAIN_PORT]}")")
    done
    printf '%-9s %-14s %11.0f %11.0f %11.0f %9.3f %9.3f %10.3f\n' "$path" "$name" \
        "$(median "${s[@]}")" "$(median "${p[@]}")" "$(median "${h[@]}")" \
        "$(median "${sh[@]}")" "$(median "${ph[@]}")" "$(median "${sp[@]}")"
done
for port in "$SPIN_PORT" "$PLAIN_PORT"; do
    echo "# :$port swarm_registry_api_spin_idle_seconds_total" \
        "$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "swarm_registry_api_spin_idle_seconds_total" { print $2 }')"
done
