#!/usr/bin/env bash
# API throughput next to h2o (issue 7). Not part of the test suite.
#
# Creates 100 labelled services (replicas 0) on the real swarm, starts the
# registry, saves its GET /services and GET /health bytes as static files,
# serves them with Debian's h2o on another loopback port, and runs the same
# h2load lines against both, in the same run:
#   h2  -c 16 -m 10     h2c prior knowledge, 16 connections x 10 streams (*)
#   h2  -c 10 -m 10     h2c prior knowledge, 10 connections x 10 streams
#   h2  -c 100          100 connections, 1 stream each
#   h1  --h1 -c 16      HTTP/1.1 keep-alive (*)
# for /services and /health. (*) marks the issue's lines, whose target is
# 1.0x h2o's req/s; the other two show how the ratio moves with the load.
# Prints req/s of both, each server's CPU time (user + system) per request
# in microseconds, the ratio, how busy h2load kept its core against each
# (registry/h2o, in %), and the registry's peak RSS (VmHWM).
#
# The issue's lines run ROUNDS rounds (default 9), the others 3, of DURATION
# seconds (default 3) per server; a round runs both servers back to back.
# Printed: the median req/s and CPU of each, the median of the rounds'
# ratios, their range, and in how many rounds the registry served at least
# as many requests as h2o. This VM moves single rounds by 10-20%, so the
# median of many rounds is the figure to read.
#
# With two CPUs or more, h2load runs on CPU 0 and both servers on the others
# (taskset; tests/bench/api_lib.sh does the setup).
#
# usage: tests/bench/api_throughput.sh [--duration SEC] [--threads N] [--rounds N (issue lines)]
#   SR_BIN      the binary (default build-bench/cmd/service-registry/service-registry,
#               built with meson --buildtype=release if missing)
#   API_THREADS is passed through (default 1); h2o gets as many threads.
set -uo pipefail
cd "$(dirname "$0")/../.."
DURATION=3
ROUNDS=9
THREADS=${API_THREADS:-1}
while [[ $# -gt 0 ]]; do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "usage: $0 [--duration SEC] [--threads N] [--rounds N]" >&2; exit 2 ;;
    esac
done

source tests/bench/api_lib.sh

REG_PORT=$(free_port)
bench_start_registry "$REG_PORT" API_THREADS="$THREADS"
REG_PID=$BENCH_PID
bench_snapshot "$REG_PORT"
total=$(jq .count "$TMP/www/services")
echo "# registry: $SR_BIN, API_THREADS=$THREADS, $total services cached (100 ours)," \
    "/services $(stat -c %s "$TMP/www/services") bytes, /health $(stat -c %s "$TMP/www/health") bytes"
H2O_PORT=$(free_port)
bench_start_h2o "$H2O_PORT" "$THREADS"
H2O_PID=$BENCH_PID

# CPU time (user + system) of a process, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# h2load prints "finished in X, N req/s, ..."; also count non-2xx. Prints
# "req/s cpu-us-per-request client-busy-%": the server's CPU is sampled
# after the warm-up and when h2load is done; the client's is h2load's whole
# CPU time (a subshell's children's time once waited for) over its wall
# time. A client near 100% means the line measures the client's cost per
# response more than the server's.
run() { # port pid path args...
    local port=$1 pid=$2 path=$3; shift 3
    (
        [[ -n $CLIENT_CPUS ]] && taskset -cp "$CLIENT_CPUS" "$BASHPID" >/dev/null
        s=$(date +%s%N)
        h2load -D "$DURATION" --warm-up-time=1 "$@" "http://127.0.0.1:$port$path" >"$TMP/h2load.out" 2>&1
        e=$(date +%s%N)
        awk -v hz="$HZ" -v ns=$((e - s)) '{ printf "%.0f\n", ($16 + $17) / hz * 1e11 / ns }' \
            "/proc/$BASHPID/stat" >"$TMP/client.busy"
    ) &
    local hp=$!
    sleep 1
    local t0 t1
    t0=$(ticks "$pid")
    wait "$hp"
    t1=$(ticks "$pid")
    local out
    out=$(cat "$TMP/h2load.out")
    local rps
    rps=$(grep -o 'finished in [^,]*, [0-9.]* req/s' <<<"$out" | awk '{print $(NF-1)}')
    local bad
    bad=$(awk '/^status codes:/ {print $5 + $7 + $9}' <<<"$out")
    local errored
    errored=$(awk '/^requests:/ {print $10 + $12}' <<<"$out")
    if [[ -z $rps ]] || [[ ${bad:-1} != 0 ]] || [[ ${errored:-1} != 0 ]]; then
        echo "h2load failed against :$port$path ($*):" >&2
        echo "$out" | tail -8 >&2
        echo "0 0 0"
        return
    fi
    awk -v r="$rps" -v t="$((t1 - t0))" -v hz="$HZ" -v d="$DURATION" -v b="$(cat "$TMP/client.busy")" \
        'BEGIN { printf "%s %.2f %s\n", r, (r > 0 ? t / hz * 1e6 / (r * d) : 0), b }'
}

lowest() { awk -v w="${1:-999}" -v x="$2" 'BEGIN { print (x != "n/a" && x < w) ? x : w }'; }

printf '\n%-9s %-16s %14s %10s %14s %10s %6s %11s %5s %9s\n' path line "registry req/s" "(CPU us)" \
    "h2o req/s" "(CPU us)" ratio "(rounds)" "won" "h2load %"
lines=("h2 -c 16 -m 10 *|-c 16 -m 10" "h2 -c 10 -m 10|-c 10 -m 10" "h2 -c 100|-c 100 -m 1"
    "h1 --h1 -c 16 *|--h1 -c 16")
worst="" worst_target=""
for path in /services /health; do
    for l in "${lines[@]}"; do
        name=${l%%|*}
        read -r -a args <<<"${l#*|}"
        # ROUNDS rounds, each running both servers back to back (which one
        # goes first alternates), so that both meet the same machine: the
        # ratio is the median of the rounds' ratios, and the spread shows
        # how much the machine moved. One run alone is too noisy to compare.
        rs=() hs=() rc=() hc=() qs=() rb=() hb=()
        nr=$ROUNDS
        [[ $name == *'*' ]] || nr=$(( ROUNDS < 3 ? ROUNDS : 3 ))
        for i in $(seq 1 "$nr"); do
            if ((i % 2)); then
                read -r x y cx < <(run "$REG_PORT" "$REG_PID" "$path" "${args[@]}")
                read -r u v cu < <(run "$H2O_PORT" "$H2O_PID" "$path" "${args[@]}")
            else
                read -r u v cu < <(run "$H2O_PORT" "$H2O_PID" "$path" "${args[@]}")
                read -r x y cx < <(run "$REG_PORT" "$REG_PID" "$path" "${args[@]}")
            fi
            rs+=("$x") rc+=("$y") hs+=("$u") hc+=("$v") rb+=("$cx") hb+=("$cu")
            qs+=("$(awk -v r="$x" -v h="$u" 'BEGIN { printf "%.4f", (h > 0 ? r / h : 0) }')")
        done
        ratio=$(median "${qs[@]}")
        ratio=$(awk -v q="$ratio" 'BEGIN { printf (q > 0 ? "%.2f" : "n/a"), q }')
        spread=$(printf '%s\n' "${qs[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
            END { printf "%.2f-%.2f", lo, hi }')
        won=$(printf '%s\n' "${qs[@]}" | awk '$1 >= 1 { w++ } END { printf "%d/%d", w, NR }')
        printf '%-9s %-16s %14.0f %10s %14.0f %10s %6s %11s %5s %9s\n' "$path" "$name" "$(median "${rs[@]}")" \
            "$(median "${rc[@]}")" "$(median "${hs[@]}")" "$(median "${hc[@]}")" "$ratio" "$spread" \
            "$won" "$(median "${rb[@]}")/$(median "${hb[@]}")"
        worst=$(lowest "$worst" "$ratio")
        [[ $name == *'*' ]] && worst_target=$(lowest "$worst_target" "$ratio")
    done
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$REG_PID/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$REG_PID/status")
echo
echo "registry peak RSS (VmHWM): $((hwm / 1024)) MB ($hwm kB); now $((rss / 1024)) MB"
echo "lowest ratio registry/h2o on the issue's lines (*): $worst_target (target 1.0)"
echo "lowest ratio registry/h2o on all lines: $worst"
