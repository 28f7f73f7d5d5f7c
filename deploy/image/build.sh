#!/usr/bin/env bash
# Builds the registry image offline:  deploy/image/build.sh [IMAGE[:TAG]]
# (default clifford666/swarm-autoscaler-suite:latest, the spec's name, or $SUITE_IMAGE:$SUITE_TAG).
# Stages a root filesystem with the release binary and the shared libraries
# ldd reports, then `docker build` of a FROM scratch Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:-${SUITE_IMAGE:-clifford666/swarm-autoscaler-suite}:${SUITE_TAG:-latest}}

[[ -d build-release ]] || meson setup build-release --buildtype=release >/dev/null
ninja -C build-release >/dev/null
bin=build-release/cmd/service-registry/service-registry

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
install -m 0755 "$bin" "$root/usr/local/bin/service-registry"
strip "$root/usr/local/bin/service-registry"
# Every library the binary loads, and the loader, at their real paths.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/" 2>/dev/null || true
# Root: the Docker socket is root:docker on the host and the docker group id
# differs between hosts, so a fixed non-root user could not open it.
printf 'root:x:0:0:root:/:/usr/local/bin/service-registry\nnobody:x:65534:65534:nobody:/:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
cp deploy/image/Dockerfile "$ctx/"
# The legacy builder needs nothing but the daemon (BuildKit may be absent).
if ! DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2
    exit 1
fi
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "built $image ($((size / 1024)) KiB)"
