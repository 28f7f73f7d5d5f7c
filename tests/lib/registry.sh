# Shared helpers for integration tests (source it after tap.sh).
# Uses: SR_BIN (the binary), SR_SRCDIR. Every name a test creates starts with
# $SR_PREFIX so cleanup removes exactly what this run made.
SR_PREFIX="srt-$$-"
SR_PIDS=()
SR_SERVICES=()
SR_TMP=$(mktemp -d /tmp/srtest.XXXXXX)

# A free TCP port on 127.0.0.1 (the kernel picks one; racy but fine on loopback).
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# poll_until DEADLINE_SEC CMD...: runs CMD every 50 ms until it succeeds or the
# deadline passes. Returns CMD's last status.
poll_until() {
    local deadline=$1; shift
    poll_ms $((deadline * 1000)) 50 "$@"
}

# poll_ms DEADLINE_MS STEP_MS CMD...: the same with millisecond bounds. Sets
# POLL_MS to the time it took.
poll_ms() {
    local deadline=$1 step=$2; shift 2
    local start end now
    start=$(date +%s%N); end=$(( start + deadline * 1000000 ))
    while :; do
        if "$@" >/dev/null 2>&1; then
            POLL_MS=$(( ($(date +%s%N) - start) / 1000000 )); return 0
        fi
        now=$(date +%s%N)
        if (( now > end )); then POLL_MS=$(( (now - start) / 1000000 )); return 1; fi
        sleep "0.$(printf '%03d' "$step")"
    done
}

# start_registry NAME [ENV=VALUE...]: starts the binary on a free port, sets
# REG_PORT/REG_PID/REG_LOG and waits for the port to answer.
start_registry() {
    local name=$1; shift
    REG_PORT=$(free_port)
    REG_LOG="$SR_TMP/$name.log"
    env ROLE=service-registry HOST=127.0.0.1 PORT="$REG_PORT" LOG_LEVEL=DEBUG "$@" \
        "$SR_BIN" >"$REG_LOG" 2>&1 &
    REG_PID=$!
    SR_PIDS+=("$REG_PID")
    poll_until 10 answers "$REG_PORT"
}

# metric URL NAME: the value of the Prometheus sample NAME (with its labels,
# as exposed) on URL/metrics; empty when there is none.
metric() {
    curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# answers PORT: true once anything answers HTTP there (any status).
answers() {
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health") != 000 ]]
}

stop_registry() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    local i
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    wait "$pid" 2>/dev/null
}

# create_service SUFFIX [docker service create args...]
create_service() {
    local name="${SR_PREFIX}$1"; shift
    SR_SERVICES+=("$name")
    docker service create --detach --name "$name" "$@" >/dev/null 2>&1
}

cleanup_all() {
    local p s
    for p in "${SR_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${SR_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for s in "${SR_SERVICES[@]}"; do docker service rm "$s" >/dev/null 2>&1; done
    rm -rf "$SR_TMP"
}
trap cleanup_all EXIT

# req [curl args...] URL: sets HTTP_STATUS and BODY (no subshell, so both
# survive). Headers go to $SR_TMP/headers.
req() {
    HTTP_STATUS=$(curl -s -D "$SR_TMP/headers" -o "$SR_TMP/body" -w '%{http_code}' "$@")
    BODY=$(cat "$SR_TMP/body")
}
