#!/usr/bin/env bash
# publish_throughput (issue 5): confirmed messages per second through the
# registry's publisher outbox to a real broker, next to reference publishers
# sending the same bodies to the same broker in the same run. Not part of the
# suite.
#
# Starts a private broker (tests/lib/rabbitmq.sh), builds and runs
# publish_throughput (publish_throughput.c: the outbox and a plain
# librabbitmq loop with the same confirm window, alternating, ROUNDS rounds),
# then, on the same bodies:
#   pika          python3-pika BlockingConnection + confirm_delivery: one
#                 confirm awaited per publish (pika_publish.py)
#   amqp-publish  amqp-tools' `amqp-publish -l`: one connection, one message
#                 per stdin line, no confirms (it cannot ask for them), timed
#                 until it exits after closing the connection: the issue's
#                 "rabbitmq-perf-style publishing with amqp-publish" (PerfTest
#                 itself is not packaged). Routed to a durable queue through
#                 the default exchange.
# Every message is persistent and lands in a durable queue (each program
# checks the count). Prints every figure and the ratios.
#
# usage: tests/bench/publish_throughput.sh [--messages N] [--rounds R]
#            [--pika N] [--amqp-publish N]
#   --messages      per outbox / librabbitmq phase (default 20000)
#   --rounds        (default 5; medians are reported)
#   --pika          messages for pika (default: --messages; 0 skips)
#   --amqp-publish  messages for amqp-publish (default: --messages; 0 skips)
#   BUILD_DIR       meson build dir (default build-bench; set up if missing).
#                   Uses its tests/bench/publish_throughput when tests/meson.build
#                   has subdir('bench'), else compiles publish_throughput.c
#                   against the dir's libsr_publisher.a / libsr_cache.a.
# The broker and temp files are removed on exit, failure or Ctrl-C included.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
SRCDIR=$PWD
N=20000
ROUNDS=5
PIKA_N=""
AP_N=""
while [[ $# -gt 0 ]]; do
    case $1 in
    --messages) N=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --pika) PIKA_N=$2; shift 2 ;;
    --amqp-publish) AP_N=$2; shift 2 ;;
    *) echo "usage: $0 [--messages N] [--rounds R] [--pika N] [--amqp-publish N]" >&2; exit 2 ;;
    esac
done
PIKA_N=${PIKA_N:-$N}
AP_N=${AP_N:-$N}
(( PIKA_N <= N )) || { echo "--pika can be at most --messages ($N)" >&2; exit 2; }
(( AP_N <= N )) || { echo "--amqp-publish can be at most --messages ($N)" >&2; exit 2; }

source "$SRCDIR/tests/lib/rabbitmq.sh"
[[ -x $RMQ_BIN/rabbitmq-server ]] || { echo "rabbitmq-server is not installed" >&2; exit 2; }

TMP=$(mktemp -d /tmp/srbench.XXXXXX)
# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM
    rmq_cleanup
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ----------------------------------------------------------------------
BUILD=${BUILD_DIR:-build-bench}
[[ -d $BUILD ]] || meson setup "$BUILD" >/dev/null || exit 2
build() { # ninja TARGETS..., quiet unless it fails
    local out
    out=$(ninja -C "$BUILD" "$@" 2>&1) && return 0
    tail -n 20 <<<"$out" >&2
    echo "cannot build $* in $BUILD" >&2
    exit 2
}
if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^tests/bench/publish_throughput:'; then
    build tests/bench/publish_throughput
    BIN=$BUILD/tests/bench/publish_throughput
else
    build publisher/libsr_publisher.a cache/libsr_cache.a
    BIN=$TMP/publish_throughput
    # shellcheck disable=SC2046
    cc -std=c11 -O2 -g -D_GNU_SOURCE -Wall -Wextra -I"$SRCDIR" tests/bench/publish_throughput.c \
        "$BUILD/publisher/libsr_publisher.a" "$BUILD/cache/libsr_cache.a" \
        $(pkg-config --cflags --libs librabbitmq jansson) -pthread -o "$BIN" || exit 2
fi

# ---- broker ---------------------------------------------------------------------
rmq_start || exit 2
RMQ_VERSION=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null)
echo "# broker rabbitmq-server $RMQ_VERSION, node $RMQ_NODE on 127.0.0.1:$RMQ_PORT" \
    "(booted in $RMQ_BOOT_MS ms); $(nproc) CPUs shared by everything"

# ---- outbox and librabbitmq --------------------------------------------------------
"$BIN" -n "$N" -r "$ROUNDS" -d "$TMP/bodies.txt" "$RMQ_URL" | tee "$TMP/c.out"
(( PIPESTATUS[0] == 0 )) || { echo "publish_throughput failed" >&2; exit 1; }
val() { sed -n "s/^$1=//p" "$2"; }
OUTBOX=$(val outbox_msgs_per_sec "$TMP/c.out")
REF=$(val reference_msgs_per_sec "$TMP/c.out")

# ---- pika -------------------------------------------------------------------------
PIKA=""
if (( PIKA_N > 0 )); then
    if /usr/bin/python3 -c 'import pika' 2>/dev/null; then
        /usr/bin/python3 tests/bench/pika_publish.py "$RMQ_PORT" "$RMQ_USER" "$RMQ_PASS" \
            "$TMP/bodies.txt" "$PIKA_N" >"$TMP/pika.out" || exit 1
        PIKA=$(val pika_msgs_per_sec "$TMP/pika.out")
        echo "pika confirm_delivery: $PIKA msg/s ($PIKA_N messages)"
    else
        echo "# python3-pika is not installed: no pika figure"
    fi
fi

# ---- amqp-publish -----------------------------------------------------------------
AP=""
if (( AP_N > 0 )); then
    if command -v amqp-publish >/dev/null; then
        q="srbench-ap-$$"
        amqp-declare-queue -u "$RMQ_URL" -d -q "$q" >/dev/null || exit 1
        head -n "$AP_N" "$TMP/bodies.txt" | cut -f2 >"$TMP/ap-bodies.txt"
        t0=$(date +%s%N)
        amqp-publish -u "$RMQ_URL" -e "" -r "$q" -p -C application/json -l \
            <"$TMP/ap-bodies.txt" || exit 1
        t1=$(date +%s%N)
        sleep 1 # unconfirmed: give the broker a moment before counting
        held=$(rmq_ctl list_queues -q --no-table-headers name messages 2>/dev/null |
            awk -v q="$q" '$1 == q {print $2}')
        amqp-delete-queue -u "$RMQ_URL" -q "$q" >/dev/null
        [[ $held == "$AP_N" ]] || { echo "amqp-publish: the queue held '$held' of $AP_N" >&2; exit 1; }
        AP=$(( AP_N * 1000000000 / (t1 - t0) ))
        echo "amqp-publish -l: $AP msg/s ($AP_N messages, one connection, unconfirmed)"
    else
        echo "# amqp-tools is not installed: no amqp-publish figure"
    fi
fi

# ---- summary ----------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "publish_throughput: confirmed, persistent messages/s to a durable queue (median of $ROUNDS rounds)"
printf '  %-34s %8s msg/s   peak RSS %s MB (+%s MB over the phase, %s messages)\n' \
    "registry outbox (cache -> confirm)" "$OUTBOX" "$(val outbox_peak_rss_mb "$TMP/c.out")" \
    "$(val outbox_rss_growth_mb "$TMP/c.out")" "$N"
printf '  %-34s %8s msg/s   outbox/librabbitmq = %s\n' "librabbitmq loop, window 1024" "$REF" \
    "$(ratio "$OUTBOX" "$REF")"
[[ -n $PIKA ]] && printf '  %-34s %8s msg/s   outbox/pika = %s\n' \
    "pika, confirm per publish" "$PIKA" "$(ratio "$OUTBOX" "$PIKA")"
[[ -n $AP ]] && printf '  %-34s %8s msg/s   outbox/amqp-publish = %s\n' \
    "amqp-publish -l, unconfirmed" "$AP" "$(ratio "$OUTBOX" "$AP")"
exit 0
