#!/bin/bash
# A streaming replica that bootstraps itself: on first start it copies the primary with
# pg_basebackup -R (which writes standby.signal and primary_conninfo), then runs as a hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "replica: cloning from ${PRIMARY_HOST}"
  rm -rf "${PGDATA:?}"/* 2>/dev/null || true
  until pg_basebackup -h "$PRIMARY_HOST" -U postgres -D "$PGDATA" -R -X stream -c fast; do
    echo "replica: primary not ready, retrying"
    sleep 2
  done
  chmod 700 "$PGDATA"
fi
exec postgres -D "$PGDATA" -c hot_standby=on
