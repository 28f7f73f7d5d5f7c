#!/usr/bin/env bash
# API_SPIN_USEC against the real binary: a worker spins (polls without
# sleeping) only under dense load. Requests further apart than the spin never
# start one, so sparse polling costs nothing; a dense load does spin; 0 turns
# it off; a SIGTERM in the middle of a spinning load still stops cleanly.
# swarm_registry_api_spin_idle_seconds_total is what the spin cost.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"
command -v h2load >/dev/null || skip_all "h2load (nghttp2-client) is not installed"

spin_idle() { metric "http://127.0.0.1:$1" swarm_registry_api_spin_idle_seconds_total; } # port
healthy() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health") == 200 ]]; }
# dense PORT N: N h2c requests, 4 connections x 10 streams; prints succeeded.
dense() {
    h2load -n "$2" -c 4 -m 10 "http://127.0.0.1:$1/health" 2>&1 |
        awk '/^requests:/ { print $8 }'
}

# A 1 ms spin makes a wrong rule easy to see: sparse requests 4 ms apart
# would each be followed by 1 ms of polling, 0.15 s over 150 of them.
start_registry spin REFRESH_INTERVAL_SEC=3600 API_SPIN_USEC=1000
ok $? "registry started with API_SPIN_USEC=1000"
poll_until 30 healthy "$REG_PORT"
ok $? "healthy (Docker connected)"
SPIN_PORT=$REG_PORT SPIN_PID=$REG_PID
idle=$(spin_idle "$SPIN_PORT")
[[ $idle =~ ^[0-9.e+-]+$ ]] && awk -v v="$idle" 'BEGIN { exit !(v < 0.001) }'
ok $? "the counter is exported, and a few separate requests left it near 0 (${idle:-missing} s)"

# New h2c connections, one request each, 10 ms apart: a handshake's burst
# (SETTINGS ACK right after the first read) must not start a spin either.
for _ in $(seq 1 30); do
    curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$SPIN_PORT/health"
    sleep 0.01
done
idle=$(spin_idle "$SPIN_PORT")
awk -v v="$idle" 'BEGIN { exit !(v < 0.01) }'
ok $? "30 h2c connections 10 ms apart start no spin: ${idle} s polled idle (one each would be >= 0.03)"

sparse=$(/usr/bin/python3 - "$SPIN_PORT" <<'EOF'
import http.client, sys, time
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
ok = 0
for _ in range(150):
    conn.request("GET", "/health")
    r = conn.getresponse()
    r.read()
    ok += r.status == 200
    time.sleep(0.004)
print(ok)
EOF
)
is "$sparse" 150 "150 sparse requests (4 ms apart, one keep-alive connection) answered"
idle=$(spin_idle "$SPIN_PORT")
awk -v v="$idle" 'BEGIN { exit !(v < 0.03) }'
ok $? "sparse requests start no spin: ${idle} s polled idle (a spin after each would be >= 0.15)"

is "$(dense "$SPIN_PORT" 20000)" 20000 "dense load: 20000 h2c requests succeeded"
idle2=$(spin_idle "$SPIN_PORT")
awk -v a="$idle" -v b="$idle2" 'BEGIN { exit !(b > a) }'
ok $? "dense load spins: the idle polling counter moved ($idle -> $idle2 s)"

start_registry nospin REFRESH_INTERVAL_SEC=3600 API_SPIN_USEC=0
ok $? "registry started with API_SPIN_USEC=0"
poll_until 30 healthy "$REG_PORT"
is "$(dense "$REG_PORT" 20000)" 20000 "API_SPIN_USEC=0: dense load served"
is "$(spin_idle "$REG_PORT")" 0 "API_SPIN_USEC=0: never spins"
stop_registry "$REG_PID"

# SIGTERM while the worker spins under load: it still leaves its loop.
h2load -D 5 -c 4 -m 10 "http://127.0.0.1:$SPIN_PORT/health" >"$SR_TMP/h2load.out" 2>&1 &
H2LOAD=$!
ticks() { awk '{ print $14 + $15 }' "/proc/$SPIN_PID/stat"; }
t_before=$(ticks)
busy() { (( $(ticks) > t_before + 20 )); } # 0.2 s of CPU at least
poll_until 5 busy
ok $? "load running against the spinning registry"
# The stop's loopbreak must end the spin itself: a lost one would still be
# caught by the 1 s grace timer, so the exit must come well before it.
kill -TERM "$SPIN_PID"
gone() { ! kill -0 "$SPIN_PID" 2>/dev/null; }
poll_ms 600 10 gone
ok $? "SIGTERM under a spinning load: exited in $POLL_MS ms (< 600, the grace period is 1 s)"
wait "$SPIN_PID"
is "$?" 0 "exit status 0"
kill "$H2LOAD" 2>/dev/null
wait "$H2LOAD" 2>/dev/null

done_testing
