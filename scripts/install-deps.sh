#!/usr/bin/env bash
# Installs the Debian packages kelemetry builds, runs and tests with.
# Idempotent; needs root (or sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
PKGS="build-essential cmake ninja-build pkg-config libmicrohttpd-dev
  libcurl4-openssl-dev libcjson-dev libsqlite3-dev libyaml-dev zlib1g-dev libzstd-dev libgnutls28-dev openssl
  libcmocka-dev libjemalloc-dev clang chromium libclang-rt-14-dev python3 jq curl valgrind
  libhiredis-dev libpq-dev redis-server redis-tools etcd-server etcd-client postgresql-15"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
