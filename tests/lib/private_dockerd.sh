# A private Docker engine for tests that stop, restart or break Docker
# (recipe: shared/reference/real-docker-for-tests.md). It runs in its own
# network namespace with its own data-root, socket and containerd namespace,
# so the machine's engine and swarm are never touched. Source after
# registry.sh. Sets PD_SOCK (the socket path) and PD_HOST (for DOCKER_HOST).
PD_NS="srtest-$$"
PD_DIR=""

pd_ping() { curl -sf --max-time 1 --unix-socket "$PD_SOCK" http://localhost/_ping >/dev/null 2>&1; }

pd_start() {
    [[ -n "$PD_DIR" ]] || {
        PD_DIR=$(mktemp -d /tmp/srpd.XXXXXX)
        PD_SOCK="$PD_DIR/docker.sock"
        PD_HOST="unix://$PD_SOCK"
        ip netns add "$PD_NS" || return 1
        ip netns exec "$PD_NS" ip link set lo up
    }
    nsenter --net=/var/run/netns/"$PD_NS" setsid dockerd \
        --data-root "$PD_DIR/data" --exec-root "$PD_DIR/exec" --pidfile "$PD_DIR/docker.pid" \
        -H "$PD_HOST" --containerd-namespace "$PD_NS" \
        --containerd-plugins-namespace "$PD_NS-plugins" \
        >>"$PD_DIR/dockerd.log" 2>&1 </dev/null &
    poll_until 60 pd_ping
}

# pd_stop: kills the daemon and waits until it has exited.
pd_stop() {
    local pid
    pid=$(cat "$PD_DIR/docker.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null
    local i
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
}

# pd_swarm: swarm init + the test image, on the private engine.
pd_swarm() {
    local st
    st=$(DOCKER_HOST=$PD_HOST docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)
    if [[ $st != active ]]; then
        DOCKER_HOST=$PD_HOST docker swarm init --advertise-addr 127.0.0.1 \
            --listen-addr 127.0.0.1:2387 >/dev/null || return 1
    fi
    docker save local/busybox:1 | DOCKER_HOST=$PD_HOST docker load >/dev/null
}

pd_docker() { DOCKER_HOST=$PD_HOST docker "$@"; }

pd_cleanup() {
    [[ -n "$PD_DIR" ]] || return 0
    if pd_ping; then
        local s
        for s in $(pd_docker service ls -q 2>/dev/null); do pd_docker service rm "$s" >/dev/null 2>&1; done
        pd_docker swarm leave --force >/dev/null 2>&1
    fi
    pd_stop
    umount "$PD_DIR"/exec/netns/* 2>/dev/null
    umount "$PD_DIR"/data/*/* 2>/dev/null
    ip netns del "$PD_NS" 2>/dev/null
    rm -rf "$PD_DIR"
    PD_DIR=""
}
