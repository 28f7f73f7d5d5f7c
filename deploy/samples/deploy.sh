#!/usr/bin/env bash
# Deploys the registry plus sample services for one scenario:
#   deploy/samples/deploy.sh cpu|memory [IMAGE] [TAG]
# IMAGE/TAG default to $SUITE_IMAGE/$SUITE_TAG, then clifford666/swarm-autoscaler-suite:latest (the spec's image).
# WITH_RABBITMQ=1 adds a RabbitMQ service (its image must be on the node).
# The stack is named autoscaler-<scenario> (or $STACK_NAME); down.sh removes
# exactly it. STACK_FILE replaces deploy/stack.yml (tests use a host-network
# variant); SAMPLES_OVERRIDE adds one more compose file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
scenario=${1:-}
case "$scenario" in
    cpu|memory) ;;
    *) echo "usage: $0 cpu|memory [IMAGE] [TAG]" >&2; exit 2 ;;
esac
export SUITE_IMAGE=${2:-${SUITE_IMAGE:-clifford666/swarm-autoscaler-suite}}
export SUITE_TAG=${3:-${SUITE_TAG:-latest}}

"$top/deploy/local/swarm-up.sh" # a swarm and the offline sample image
if ! docker image inspect "$SUITE_IMAGE:$SUITE_TAG" >/dev/null 2>&1; then
    "$top/deploy/image/build.sh" "$SUITE_IMAGE:$SUITE_TAG"
fi

stack=${STACK_NAME:-autoscaler-$scenario}
files=(-c "${STACK_FILE:-$top/deploy/stack.yml}" -c "$here/$scenario.yml")
[[ "${WITH_RABBITMQ:-0}" == 1 ]] && files+=(-c "$here/rabbitmq.yml")
[[ -n "${SAMPLES_OVERRIDE:-}" ]] && files+=(-c "$SAMPLES_OVERRIDE")
docker stack deploy "${files[@]}" "$stack" >/dev/null
echo "deployed stack $stack ($SUITE_IMAGE:$SUITE_TAG); remove it with $here/down.sh $scenario"
