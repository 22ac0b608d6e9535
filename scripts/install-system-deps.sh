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
# promtool (in Debian's prometheus package) checks deploy/monitoring: test/integration/monitoring-tools.test.ts.
command -v promtool >/dev/null || need+=(prometheus)
# stress-ng loads both cores while CI runs the suite (scripts/under-load.sh): the tests must not need an idle machine.
command -v stress-ng >/dev/null || need+=(stress-ng)
if [ ${#need[@]} -eq 0 ]; then echo "system deps: all present"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system deps missing: ${need[*]} — run as root (or: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "installing: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
# Debian starts the packaged services (prometheus brings prometheus-node-exporter, recommended);
# the tests run their own on free ports, and only promtool is wanted of prometheus.
for svc in redis-server nginx prometheus prometheus-node-exporter; do
  (systemctl stop "$svc" 2>/dev/null || service "$svc" stop 2>/dev/null || true) >/dev/null 2>&1
done
