# Shared setup of the API benchmarks (api_throughput.sh, api_spin_ab.sh):
# source it from the repository root. It starts the local swarm if there is
# none (deploy/local/swarm-up.sh), installs h2o and h2load if missing,
# builds SR_BIN (release) if not given, creates 100 labelled services
# (replicas 0) on the real swarm, and removes them and every process it
# started on exit. Functions:
#   bench_start_registry PORT [ENV=VALUE...]  the binary on CPU SERVER_CPUS;
#                                             sets BENCH_PID, waits for the 100
#   bench_start_h2o PORT THREADS             h2o serving $TMP/www; sets BENCH_PID
#   bench_snapshot PORT                      the registry's /services and /health
#                                            bytes into $TMP/www
#   on_cpus CPUS CMD...                      exec CMD pinned (CPUS may be empty)
#   median X...                              the median of numbers
# With two CPUs or more, the client runs on CLIENT_CPUS (0) and the servers
# on SERVER_CPUS (the others): h2load and a server each saturate a core at
# these rates, and unpinned they sometimes share one, which moved single runs
# by 20%.

need() { command -v "$1" >/dev/null 2>&1; }
if ! need h2o || ! need h2load; then
    echo "# installing h2o / nghttp2-client"
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq h2o nghttp2-client >/dev/null || exit 1
fi
if [[ -z ${SR_BIN:-} ]]; then
    if [[ ! -x build-bench/cmd/service-registry/service-registry ]]; then
        [[ -d build-bench ]] || meson setup build-bench --buildtype=release >/dev/null || exit 1
    fi
    ninja -C build-bench cmd/service-registry/service-registry >/dev/null || exit 1
    SR_BIN=$PWD/build-bench/cmd/service-registry/service-registry
fi

# A Docker engine in Swarm mode with local/busybox:1 (starts one if needed).
deploy/local/swarm-up.sh || exit 1

TMP=$(mktemp -d /tmp/srbench.XXXXXX)
PREFIX="srb-$$-"
LABEL="srbench=$$"
BENCH_PIDS=()
bench_cleanup() {
    local p
    for p in "${BENCH_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wait 2>/dev/null
    docker service ls -q --filter "label=$LABEL" | xargs -r docker service rm >/dev/null 2>&1
    rm -rf "$TMP"
}
trap bench_cleanup EXIT

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

NCPU=$(nproc)
CLIENT_CPUS="" SERVER_CPUS=""
if [[ $NCPU -ge 2 ]] && need taskset; then
    CLIENT_CPUS=0
    SERVER_CPUS=1-$((NCPU - 1))
fi
on_cpus() { # cpus command...: becomes the command (so $! is its PID), pinned
    local cpus=$1
    shift
    if [[ -n $cpus ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "# creating 100 labelled services (replicas 0)"
seq -w 1 100 | xargs -P 8 -I{} docker service create --detach --name "${PREFIX}{}" --replicas 0 \
    --label autoscaler.enabled=true --label "$LABEL" --label tier=web \
    --label autoscaler.metric=cpu --label autoscaler.max=5 local/busybox:1 sleep 1000000 \
    >/dev/null 2>&1

bench_start_registry() { # port [env...]
    local port=$1
    shift
    (
        unset API_SPIN_USEC # the default, unless the caller passes it
        export ROLE=service-registry HOST=127.0.0.1 PORT="$port" LOG_LEVEL=WARNING \
            REFRESH_INTERVAL_SEC=3600 "$@"
        on_cpus "$SERVER_CPUS" "$SR_BIN"
    ) >"$TMP/registry-$port.log" 2>&1 &
    BENCH_PID=$!
    BENCH_PIDS+=("$BENCH_PID")
    local ours=0
    for _ in $(seq 1 600); do
        ours=$(curl -s "http://127.0.0.1:$port/services?label=$LABEL" | jq -r '.count // 0' 2>/dev/null)
        [[ $ours == 100 ]] && return 0
        sleep 0.1
    done
    echo "only $ours of the 100 services showed up" >&2
    exit 1
}

# The bytes h2o will serve: exactly what the registry answers now. Their
# cache version must not move during the run, so use a quiet moment.
bench_snapshot() { # port
    mkdir -p "$TMP/www"
    chmod 755 "$TMP" "$TMP/www" # h2o drops root privileges to nobody
    curl -s "http://127.0.0.1:$1/services" -o "$TMP/www/services"
    curl -s "http://127.0.0.1:$1/health" -o "$TMP/www/health"
}

bench_start_h2o() { # port threads
    cat >"$TMP/h2o.conf" <<EOC
listen:
  host: 127.0.0.1
  port: $1
num-threads: $2
http2-max-concurrent-requests-per-connection: 100
file.mime.setdefaulttype: application/json
hosts:
  default:
    paths:
      /:
        file.dir: $TMP/www
        file.send-compressed: OFF
EOC
    on_cpus "$SERVER_CPUS" h2o -c "$TMP/h2o.conf" >"$TMP/h2o.log" 2>&1 &
    BENCH_PID=$!
    BENCH_PIDS+=("$BENCH_PID")
    for _ in $(seq 1 100); do
        curl -s "http://127.0.0.1:$1/services" -o "$TMP/h2o.services" && break
        sleep 0.1
    done
    cmp -s "$TMP/h2o.services" "$TMP/www/services" || {
        echo "h2o does not serve the same bytes" >&2
        ls -la "$TMP/www" "$TMP/h2o.services" >&2
        exit 1
    }
    echo "# h2o $(h2o --version | head -1 | awk '{print $3}'): num-threads $2, same bytes from $TMP/www"
    if [[ -n $CLIENT_CPUS ]]; then
        echo "# CPUs: h2load on $CLIENT_CPUS, servers on $SERVER_CPUS"
    else
        echo "# CPUs: $NCPU, not pinned"
    fi
}
