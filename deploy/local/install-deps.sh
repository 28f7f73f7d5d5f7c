#!/usr/bin/env bash
# Installs the Debian 12 packages swarm-registry needs, only those missing.
#   install-deps.sh          build + run (compiler, libraries, Docker, busybox)
#   install-deps.sh --test   plus what the tests use (clients, broker, tools)
set -euo pipefail

pkgs=(gcc meson ninja-build pkg-config libcurl4-openssl-dev libnghttp2-dev libevent-dev
      libjansson-dev librabbitmq-dev docker.io busybox-static curl ca-certificates iproute2)
if [[ "${1:-}" == "--test" ]]; then
    pkgs+=(nghttp2-client amqp-tools rabbitmq-server python3 python3-h2 python3-httpx
           python3-pika python3-yaml jq valgrind procps util-linux
           prometheus clang libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
