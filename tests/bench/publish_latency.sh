#!/usr/bin/env bash
# publish_latency (issue 5): time from `docker service update` returning to a
# RabbitMQ consumer receiving the matching service.updated, over N label
# updates on the real swarm. Target: p99 under 50 ms. Not part of the suite.
#
# A private broker (tests/lib/rabbitmq.sh: own node name, ports, data dir),
# the registry (REFRESH_INTERVAL_SEC=3600 and METRICS_REFRESH_INTERVAL_SEC=3600,
# so only Docker events explain a message), its own exchange, and a pika
# consumer on an exclusive queue bound with "service.updated". One labelled
# service (replicas 0); then N times
#   docker service update --detach --label-add autoscaler.max=<i> NAME
# timed from the command's exit to the consumer's callback for the first
# service.updated about NAME whose body says autoscaler.max_replicas == i
# (stale messages of earlier updates are skipped), with a 100 ms pause between
# updates so the trailing events of one update don't queue ahead of the next.
# p99 is nearest-rank (with 50 samples: the largest). A negative sample means
# the message arrived before the docker CLI process had exited (the engine
# answers, then the CLI still has to exit and be reaped); they are counted.
# For scale, the same arrivals are also given from the CLI's start.
#
# usage: tests/bench/publish_latency.sh [--updates N]      (default 50)
#   SR_BIN  the binary (default build-bench/cmd/service-registry/service-registry,
#           set up with `meson setup build-bench` and built if missing)
# Exit status: 0 when the target is met, 1 when not, 2 on a setup failure.
# The service, the registry and the broker are removed on exit, failure or
# Ctrl-C included.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
SRCDIR=$PWD
N=50
while [[ $# -gt 0 ]]; do
    case $1 in
    --updates) N=$2; shift 2 ;;
    *) echo "usage: $0 [--updates N]" >&2; exit 2 ;;
    esac
done

source "$SRCDIR/tests/lib/rabbitmq.sh"
[[ -x $RMQ_BIN/rabbitmq-server ]] || { echo "rabbitmq-server is not installed" >&2; exit 2; }
/usr/bin/python3 -c 'import pika' 2>/dev/null || { echo "python3-pika is not installed" >&2; exit 2; }

if [[ -z ${SR_BIN:-} ]]; then
    [[ -d build-bench ]] || meson setup build-bench >/dev/null || exit 2
    if ! out=$(ninja -C build-bench cmd/service-registry/service-registry 2>&1); then
        tail -n 20 <<<"$out" >&2
        echo "cannot build the registry in build-bench" >&2
        exit 2
    fi
    SR_BIN=$SRCDIR/build-bench/cmd/service-registry/service-registry
fi

NAME="srbench-$$"
EXCHANGE="srbench-$$"
TMP=$(mktemp -d /tmp/srbench.XXXXXX)
REG_PID=""
# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    docker service rm "$NAME" >/dev/null 2>&1
    if [[ -n $REG_PID ]]; then
        kill -TERM "$REG_PID" 2>/dev/null
        wait "$REG_PID" 2>/dev/null
    fi
    rmq_cleanup
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rmq_start || exit 2
echo "# broker $RMQ_NODE on 127.0.0.1:$RMQ_PORT (booted in $RMQ_BOOT_MS ms);" \
    "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

REG_PORT=$(_rmq_free_port)
env ROLE=service-registry HOST=127.0.0.1 PORT="$REG_PORT" LOG_LEVEL=WARNING \
    RABBITMQ_URL="$RMQ_URL" RABBITMQ_EXCHANGE="$EXCHANGE" \
    REFRESH_INTERVAL_SEC=3600 METRICS_REFRESH_INTERVAL_SEC=3600 \
    "$SR_BIN" >"$TMP/registry.log" 2>&1 &
REG_PID=$!
connected=""
for _ in $(seq 1 300); do
    connected=$(curl -s "http://127.0.0.1:$REG_PORT/events" | jq -r '.publisher.status' 2>/dev/null)
    [[ $connected == connected ]] && break
    kill -0 "$REG_PID" 2>/dev/null || break
    sleep 0.05
done
if [[ $connected != connected ]]; then
    echo "the registry's publisher never connected; registry log:" >&2
    tail -n 20 "$TMP/registry.log" >&2
    exit 2
fi

# The measurement (the consumer binds before the service exists).
/usr/bin/python3 - "$RMQ_PORT" "$RMQ_USER" "$RMQ_PASS" "$EXCHANGE" "$NAME" "$N" "$REG_PORT" \
    <<'EOF'
import json, math, queue, statistics, subprocess, sys, threading, time, urllib.request
import pika

port, user, password, exchange, name, n, reg_port = sys.argv[1:8]
n = int(n)
received = queue.Queue()


def fail(msg):  # a setup failure, not a missed target
    print("publish_latency: " + msg, file=sys.stderr)
    sys.exit(2)

bound = threading.Event()


def consume():
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", int(port), "/", pika.PlainCredentials(user, password)))
    ch = conn.channel()
    ch.exchange_declare(exchange, "topic", durable=True)
    q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    ch.queue_bind(q, exchange, "service.updated")

    def on_message(ch, method, props, body):
        received.put((time.perf_counter(), body))
    ch.basic_consume(q, on_message, auto_ack=True)
    bound.set()
    ch.start_consuming()


threading.Thread(target=consume, daemon=True).start()
if not bound.wait(10):
    fail("consumer did not bind within 10 s")


def docker(*args):
    return subprocess.run(["docker", *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True)


r = docker("service", "create", "--detach", "--name", name, "--label", "autoscaler.enabled=true",
           "--replicas", "0", "local/busybox:1", "sleep", "1000000")
if r.returncode != 0:
    fail("docker service create failed: " + r.stderr.strip())
deadline = time.time() + 15
while True:  # the registry has it cached (from the service.create event)
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/services/%s" % (reg_port, name)) as resp:
            if resp.status == 200:
                break
    except OSError:
        pass
    if time.time() > deadline:
        fail("the registry never listed " + name)
    time.sleep(0.05)
time.sleep(0.5)  # let the create's own follow-up events pass

lat, full, early, stale = [], [], 0, 0
for i in range(1, n + 1):
    time.sleep(0.1)
    start = time.perf_counter()
    r = docker("service", "update", "--detach", "--label-add", "autoscaler.max=%d" % i, name)
    t0 = time.perf_counter()
    if r.returncode != 0:
        fail("docker service update failed: " + r.stderr.strip())
    while True:
        try:
            t, body = received.get(timeout=max(0.0, t0 + 10 - time.perf_counter()))
        except queue.Empty:
            fail("update %d: no matching service.updated within 10 s" % i)
        m = json.loads(body)
        svc = m.get("service") or {}
        if (m.get("event") == "service.updated" and svc.get("name") == name and
                (svc.get("autoscaler") or {}).get("max_replicas") == i):
            break
        stale += 1
    ms = (t - t0) * 1000
    early += ms < 0
    lat.append(ms)
    full.append((t - start) * 1000)

s = sorted(lat)
med = statistics.median(s)
p99 = s[max(0, math.ceil(0.99 * len(s)) - 1)]
met = p99 < 50
print("publish_latency: %d label updates, docker service update returning -> service.updated "
      "received" % n)
print("  median %.1f ms  p99 %.1f ms  min %.1f ms  max %.1f ms" % (med, p99, s[0], s[-1]))
print("  slowest: %s ms" % ", ".join("%.1f" % v for v in s[:-6:-1]))
print("  target p99 < 50 ms: %s" % ("met" if met else "NOT met"))
print("  (%d arrived before the docker CLI exited; %d other service.updated skipped)" %
      (early, stale))
print("  from the docker CLI's start instead (its own ~run time included): median %.1f ms, "
      "max %.1f ms" % (statistics.median(full), max(full)))
sys.exit(0 if met else 1)
EOF
rc=$?
kill -0 "$REG_PID" 2>/dev/null || { echo "the registry exited during the run" >&2; rc=2; }
exit $rc
