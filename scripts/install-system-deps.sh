#!/usr/bin/env bash
# Installs the system binaries the real-process tests start: redis-server (and, for the cluster
# tests, nginx; for the browser tests, chromium). Postgres 15 is expected under /usr/lib/postgresql/15/bin (Debian's postgresql-15).
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || need+=(nginx-light)
command -v docker-compose >/dev/null || need+=(docker-compose)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
# The browser tests drive Debian's chromium through playwright-core (no bundled browser download).
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then echo "system deps: all present"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system deps missing: ${need[*]} — run as root (or: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "installing: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
# Debian starts the packaged services; the tests run their own on free ports.
(systemctl stop redis-server nginx 2>/dev/null || service redis-server stop 2>/dev/null || true) >/dev/null 2>&1
