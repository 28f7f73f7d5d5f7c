#!/usr/bin/env bash
# Removes what deploy.sh created for one scenario: the stack
# autoscaler-<scenario> (its services and its network), and waits until the
# network is gone so a new deploy can start clean.
set -euo pipefail
scenario=${1:-}
case "$scenario" in
    cpu|memory) ;;
    *) echo "usage: $0 cpu|memory" >&2; exit 2 ;;
esac
stack=${STACK_NAME:-autoscaler-$scenario}
docker stack rm "$stack" >/dev/null 2>&1 || true
for _ in $(seq 1 120); do
    [[ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" &&
       -z "$(docker service ls -q --filter "label=com.docker.stack.namespace=$stack")" ]] && break
    sleep 0.25
done
echo "removed stack $stack"
