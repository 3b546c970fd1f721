#!/bin/sh
# Installs the Debian packages Petrel needs, when missing. Used by the Makefile (first build)
# and by docker/Dockerfile. Idempotent, and quiet when everything is already there.
#
#   install-deps.sh          everything: build, tests, benchmark (what `make` needs)
#   install-deps.sh build    only what compiling build/petrel needs
#   install-deps.sh runtime  only the shared libraries build/petrel runs with
set -eu

BUILD="build-essential pkg-config libuv1-dev libyaml-dev libssl-dev libc-ares-dev libpcre2-dev node-llhttp libnghttp2-dev"
RUNTIME="libuv1 libyaml-0-2 libpcre2-8-0 libssl3 libc-ares2 libnghttp2-14 ca-certificates iptables"
TEST="clang curl openssl time python3 python3-pytest python3-yaml python3-cryptography prometheus dnsmasq-base iproute2 iptables testssl.sh nghttp2-client python3-h2 python3-grpcio python3-grpc-tools"
BENCH="haproxy nginx-light wrk linux-perf strace valgrind"

case "${1:-all}" in
    build) PACKAGES="$BUILD" ;;
    runtime) PACKAGES="$RUNTIME" ;;
    all) PACKAGES="$BUILD $TEST $BENCH" ;;
    *) echo "usage: $0 [all|build|runtime]" >&2; exit 2 ;;
esac

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# The OTLP test receiver (tests/e2e/otel) runs on Node.js; a node and npm from elsewhere
# (NodeSource bundles npm) count, so only the commands are checked.
if [ "${1:-all}" = all ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0

echo "petrel: installing missing Debian packages:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
# The benchmark and tests start their own nginx, HAProxy and promtool; the packaged services
# are not wanted.
for svc in nginx haproxy prometheus; do
    case "$missing" in
        *"$svc"*) $SUDO service "$svc" stop >/dev/null 2>&1 || true ;;
    esac
done
