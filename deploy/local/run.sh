#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, brings up a
# local swarm if there is none, creates the demo service, and runs the
# registry in the foreground on port 5001 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/../.."

./deploy/local/install-deps.sh
./deploy/local/swarm-up.sh

[[ -d build ]] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null

if ! docker service inspect demo >/dev/null 2>&1; then
    docker service create --detach --name demo \
        --label autoscaler.enabled=true --label autoscaler.metric=cpu \
        --label autoscaler.min=1 --label autoscaler.max=3 \
        local/busybox:1 sleep 1000000000 >/dev/null 2>&1
    echo "run: created demo service 'demo'" >&2
fi

export ROLE=service-registry PORT="${PORT:-5001}"
exec ./build/cmd/service-registry/service-registry
