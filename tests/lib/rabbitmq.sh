# A private RabbitMQ broker for integration tests (source it).
#
#   rmq_start          first call: new node in a temp dir, on free loopback
#                      ports; later calls (after rmq_stop): the same node,
#                      ports and data again. Sets RMQ_PORT, RMQ_NODE,
#                      RMQ_USER, RMQ_PASS, RMQ_URL (amqp://user:pass@127.0.0.1:port,
#                      vhost "/").
#   rmq_stop           graceful shutdown; the data dir stays for a restart.
#   rmq_cleanup        stops the node and its epmd, removes the temp dir.
#                      Idempotent; call it from the script's EXIT trap.
#   rmq_add_user U P   another user with full rights on "/" (rabbitmqctl).
#   rmq_ctl ARGS...    rabbitmqctl against this node.
#   rmq_consume OUT EXCHANGE
#                      a pika consumer on a durable queue bound to EXCHANGE
#                      with "#", appending one JSON line per message to OUT:
#                      {"routing_key","redelivered","properties":{...},"body":<JSON>}.
#                      The queue outlives broker restarts (persistent messages
#                      wait in it) and the consumer reconnects by itself.
#                      Returns once it is bound. Several may run; all stop
#                      in rmq_cleanup.
#
# Nothing is shared with another broker on the machine: its own node name,
# AMQP, distribution and epmd ports, HOME (so its own Erlang cookie), config,
# plugin list, data and logs, all under one temp dir. The test user comes
# from the config (default_user/default_pass), created on the node's first
# boot, which saves a slow rabbitmqctl round trip per run.
# Booting takes a few seconds (see RMQ_BOOT_MS): share one broker per script.

RMQ_BIN=/usr/lib/rabbitmq/bin # the real scripts: /usr/sbin's wrappers su to rabbitmq
RMQ_DIR=
RMQ_PID=
RMQ_NODE=
RMQ_BOOT_MS=
RMQ_CONSUMER_PIDS=()
RMQ_EPMD_PID=

_rmq_free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Every broker tool runs with this environment, so they find the same node.
_rmq_env() {
    RMQ_ENV=(HOME="$RMQ_DIR"
        ERL_EPMD_PORT="$RMQ_EPMD_PORT"
        RABBITMQ_NODENAME="$RMQ_NODE"
        RABBITMQ_NODE_PORT="$RMQ_PORT"
        RABBITMQ_DIST_PORT="$RMQ_DIST_PORT"
        RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
        RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
        RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
        RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
        RABBITMQ_LOG_BASE="$RMQ_DIR/log"
        RABBITMQ_PID_FILE="$RMQ_DIR/rabbit.pid"
        ERL_CRASH_DUMP="$RMQ_DIR/erl_crash.dump")
}

rmq_ctl() {
    env "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODE" "$@"
}

_rmq_port_open() {
    /usr/bin/python3 - "$RMQ_PORT" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    # The listener accepts before the node is ready for logins; an AMQP
    # header answered by connection.start (frame type 1) means it is.
    s.sendall(b"AMQP\x00\x00\x09\x01")
    sys.exit(0 if s.recv(1) == b"\x01" else 1)
except OSError:
    sys.exit(1)
EOF
}

_rmq_init() {
    RMQ_DIR=$(mktemp -d /tmp/srrmq.XXXXXX) || return 1
    RMQ_NODE="srt-$$@localhost"
    RMQ_PORT=$(_rmq_free_port)
    RMQ_DIST_PORT=$(_rmq_free_port)
    RMQ_EPMD_PORT=$(_rmq_free_port)
    RMQ_USER=srtest
    RMQ_PASS="pw$RANDOM$RANDOM"
    RMQ_URL="amqp://$RMQ_USER:$RMQ_PASS@127.0.0.1:$RMQ_PORT"
    mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
    : >"$RMQ_DIR/rabbitmq-env.conf"
    echo '[].' >"$RMQ_DIR/enabled_plugins"
    echo '[].' >"$RMQ_DIR/advanced.config"
    # disk_free_limit: the default (50 MB) can block publishers on a full
    # CI disk, which would look like a publisher bug.
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$RMQ_PORT
loopback_users = none
default_user = $RMQ_USER
default_pass = $RMQ_PASS
default_vhost = /
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
disk_free_limit.absolute = 1MB
log.console = false
log.file.level = info
EOF
    _rmq_env
}

rmq_start() {
    [[ -n $RMQ_PID ]] && kill -0 "$RMQ_PID" 2>/dev/null && return 0
    [[ -n $RMQ_DIR ]] || _rmq_init || return 1
    local start=$(date +%s%N)
    # Our own epmd, as our child: erl would otherwise start a daemon that
    # outlives us (or lingers unreaped once killed).
    if [[ -z $RMQ_EPMD_PID ]]; then
        epmd -port "$RMQ_EPMD_PORT" >/dev/null 2>&1 &
        RMQ_EPMD_PID=$!
    fi
    local deadline=$(( start + 60000000000 )) tries=0
    while :; do
        # A simple command, so $! is the server script itself (it turns
        # SIGTERM into a clean shutdown of the node).
        env "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmq-server" >>"$RMQ_DIR/server.out" 2>&1 &
        RMQ_PID=$!
        tries=$((tries + 1))
        while ! _rmq_port_open && kill -0 "$RMQ_PID" 2>/dev/null &&
            (( $(date +%s%N) <= deadline )); do
            sleep 0.1
        done
        _rmq_port_open && break
        # A restart right after a stop once failed in prelaunch (seen once
        # in ~20 runs): the old node's remains. One more try, a second on.
        if (( tries < 2 )) && ! kill -0 "$RMQ_PID" 2>/dev/null && (( $(date +%s%N) <= deadline )); then
            wait "$RMQ_PID" 2>/dev/null
            echo "# rabbitmq exited while starting; trying once more" >&2
            sleep 1
            continue
        fi
        echo "# rabbitmq did not start; last lines of its output:" >&2
        tail -n 20 "$RMQ_DIR/server.out" | sed 's/^/#   /' >&2
        return 1
    done
    RMQ_BOOT_MS=$(( ($(date +%s%N) - start) / 1000000 ))
}

rmq_stop() {
    [[ -n $RMQ_PID ]] || return 0
    if kill -0 "$RMQ_PID" 2>/dev/null; then
        kill -TERM "$RMQ_PID" 2>/dev/null
        local i
        for i in $(seq 1 300); do kill -0 "$RMQ_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$RMQ_PID" 2>/dev/null; then # hung: kill the VM itself
            local vm
            vm=$(cat "$RMQ_DIR/rabbit.pid" 2>/dev/null)
            [[ -n $vm ]] && kill -KILL "$vm" 2>/dev/null
            kill -KILL "$RMQ_PID" 2>/dev/null
        fi
    fi
    wait "$RMQ_PID" 2>/dev/null
    # The Erlang VM may outlive the script for a moment; a restart with the
    # same node name before it is gone fails ("node name already in use").
    local vm i
    vm=$(cat "$RMQ_DIR/rabbit.pid" 2>/dev/null)
    if [[ -n $vm ]]; then
        for i in $(seq 1 100); do kill -0 "$vm" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$vm" 2>/dev/null && kill -KILL "$vm" 2>/dev/null
        rm -f "$RMQ_DIR/rabbit.pid"
    fi
    RMQ_PID=
}

rmq_add_user() {
    rmq_ctl add_user "$1" "$2" >/dev/null &&
        rmq_ctl set_permissions -p / "$1" '.*' '.*' '.*' >/dev/null
}

# The consumer's code (argv: port user password exchange out queue).
_RMQ_CONSUMER_PY='
import json, sys, time
import pika
port, user, password, exchange, out, queue = sys.argv[1:7]
params = pika.ConnectionParameters("127.0.0.1", int(port), "/",
                                   pika.PlainCredentials(user, password),
                                   heartbeat=10, blocked_connection_timeout=10)
f = open(out, "a")
def on_message(ch, method, props, body):
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {"unparsable": body.decode("utf-8", "replace")}
    f.write(json.dumps({
        "routing_key": method.routing_key,
        "redelivered": method.redelivered,
        "properties": {"content_type": props.content_type,
                       "delivery_mode": props.delivery_mode,
                       "message_id": props.message_id,
                       "app_id": props.app_id,
                       "timestamp": props.timestamp},
        "body": parsed}) + "\n")
    f.flush()
    ch.basic_ack(method.delivery_tag)
while True:
    try:
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.exchange_declare(exchange, "topic", durable=True)
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, exchange, "#")
        open(out + ".ready", "w").close()
        ch.basic_consume(queue, on_message)
        ch.start_consuming()
    except Exception as e:  # the broker is restarting: try again
        print("consumer:", repr(e), flush=True)
        time.sleep(0.2)
'

rmq_consume() {
    local out=$1 exchange=$2
    : >"$out"
    rm -f "$out.ready"
    /usr/bin/python3 -u -c "$_RMQ_CONSUMER_PY" "$RMQ_PORT" "$RMQ_USER" "$RMQ_PASS" \
        "$exchange" "$out" "srt-q-$$-$RANDOM" >>"$RMQ_DIR/consumer.log" 2>&1 &
    local pid=$! i
    RMQ_CONSUMER_PIDS+=("$pid")
    for i in $(seq 1 100); do
        [[ -e "$out.ready" ]] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

rmq_cleanup() {
    [[ -n $RMQ_DIR ]] || return 0
    local pid
    for pid in "${RMQ_CONSUMER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    RMQ_CONSUMER_PIDS=()
    rmq_stop
    if [[ -n $RMQ_EPMD_PID ]]; then # private port: nothing else uses it
        kill "$RMQ_EPMD_PID" 2>/dev/null
        wait "$RMQ_EPMD_PID" 2>/dev/null
        RMQ_EPMD_PID=
    fi
    rm -rf "$RMQ_DIR"
    RMQ_DIR=
}
