#!/usr/bin/env bash
# End to end on the real swarm: build the image offline, deploy the stack and
# the cpu samples (registry on the host network, bound to 127.0.0.1: tests
# never send traffic to container addresses), wait until Docker's own health
# status is healthy, check the API, then a registry that cannot reach Docker
# turns unhealthy. down.sh removes everything.
source "$SR_SRCDIR/tests/lib/tap.sh"
source "$SR_SRCDIR/tests/lib/registry.sh"

export SUITE_IMAGE="srt-suite" SUITE_TAG="$$"
export STACK_NAME="${SR_PREFIX}cpu"
port=$(free_port)
cleanup_deploy() {
    "$SR_SRCDIR/deploy/samples/down.sh" cpu >/dev/null 2>&1
    docker service rm "${SR_PREFIX}sick" >/dev/null 2>&1
    docker image rm -f "$SUITE_IMAGE:$SUITE_TAG" >/dev/null 2>&1
    cleanup_all
}
trap cleanup_deploy EXIT

out=$("$SR_SRCDIR/deploy/image/build.sh" "$SUITE_IMAGE:$SUITE_TAG" 2>&1); ok $? "image builds offline: $out"
size=$(docker image inspect -f '{{.Size}}' "$SUITE_IMAGE:$SUITE_TAG")
(( size < 32 * 1024 * 1024 )); ok $? "image is small ($((size / 1024)) KiB, the binary and its libraries only)"
docker run --rm --entrypoint /usr/local/bin/service-registry "$SUITE_IMAGE:$SUITE_TAG" --version >/dev/null 2>&1
ok $? "the binary runs inside the image"
docker run --rm -e ROLE=autoscaler "$SUITE_IMAGE:$SUITE_TAG" >/dev/null 2>&1
is $? 2 "ROLE=autoscaler exits 2"
docker run --rm -e ROLE=autoscaler "$SUITE_IMAGE:$SUITE_TAG" 2>&1 | grep -q 'ROLE=service-registry'
ok $? "... naming the accepted role"

docker stack config -c "$SR_SRCDIR/deploy/stack.yml" -c "$SR_SRCDIR/deploy/samples/cpu.yml" >/dev/null
ok $? "docker stack config validates stack.yml + samples"

# The test variant of the stack: host network, 127.0.0.1, a fast healthcheck.
/usr/bin/python3 - "$SR_SRCDIR/deploy/stack.yml" "$SR_TMP/stack.yml" "$port" <<'PY'
import sys, yaml
src, dst, port = sys.argv[1], sys.argv[2], sys.argv[3]
d = yaml.safe_load(open(src))
s = d["services"]["service-registry"]
s.pop("ports", None)
s["networks"] = ["hostnet"]
s["environment"].update({"HOST": "127.0.0.1", "PORT": port, "REFRESH_INTERVAL_SEC": "2"})
s["healthcheck"].update({"interval": "1s", "start_period": "1s", "retries": 2})
d["networks"]["hostnet"] = {"external": True, "name": "host"}
yaml.safe_dump(d, open(dst, "w"))
PY
STACK_FILE="$SR_TMP/stack.yml" "$SR_SRCDIR/deploy/samples/deploy.sh" cpu >/dev/null 2>&1
ok $? "deploy.sh cpu deployed stack $STACK_NAME"

health_of() { # service -> health status of its running container
    local c
    c=$(docker ps -q --filter "label=com.docker.swarm.service.name=$1" | head -n 1)
    [[ -n "$c" ]] && docker inspect -f '{{.State.Health.Status}}' "$c"
}
is_healthy() { [[ $(health_of "${STACK_NAME}_service-registry") == healthy ]]; }
poll_until 60 is_healthy; ok $? "registry task running and healthy (Docker's health status)"

URL="http://127.0.0.1:$port"
samples() {
    curl -sf "$URL/services" | jq -e --arg s "$STACK_NAME" \
        '[.services[] | select(.stack == $s) | .name] | sort == [($s+"_cpu-burner"), ($s+"_cpu-idle")]'
}
poll_until 20 samples; ok $? "the sample services are listed, with their stack"
b=$(curl -s "$URL/services/${STACK_NAME}_cpu-burner")
is "$(jq -c '[.autoscaler.metric, .autoscaler.cpu_threshold, .autoscaler.max_replicas]' <<<"$b")" \
    '["cpu",50,3]' "labels parsed from the sample stack"
curl -s "$URL/services" | jq -e '[.services[].name] | map(test("service-registry")) | any | not' >/dev/null
ok $? "the registry itself (unlabelled) is not listed"

# A registry that cannot reach Docker answers 503 on /health: Docker marks it unhealthy.
sport=$(free_port)
docker service create --detach --name "${SR_PREFIX}sick" --network host \
    -e HOST=127.0.0.1 -e PORT="$sport" -e DOCKER_BASE_URL=unix:///nonexistent.sock \
    --health-interval 1s --health-retries 2 --health-start-period 1s \
    "$SUITE_IMAGE:$SUITE_TAG" >/dev/null 2>&1
is_unhealthy() { [[ $(health_of "${SR_PREFIX}sick") == unhealthy ]]; }
poll_until 40 is_unhealthy; ok $? "a registry without Docker turns unhealthy in Docker's eyes"

"$SR_SRCDIR/deploy/samples/down.sh" cpu >/dev/null 2>&1
left=$(docker service ls -q --filter "label=com.docker.stack.namespace=$STACK_NAME" | wc -l)
is "$left" 0 "down.sh removed every service of the stack"
done_testing
