#!/usr/bin/env bash
# Runs a command while stress-ng keeps every core busy, to show the command does not depend on an idle
# machine (tests wait for conditions, not guessed durations). The load runs at the command's own priority,
# is bounded (LOAD_TIMEOUT, default 40 min) and is stopped when the command ends, however it ends.
# Usage: scripts/under-load.sh npm test      (LOAD_CPUS, default: every core; LOAD_PERCENT, default 100;
#        LOAD_NICE, default 0: the load's niceness — 0 contends with the command as an equal, 19 only takes
#        what the command leaves idle)
set -euo pipefail
command -v stress-ng >/dev/null || { echo "under-load: stress-ng is missing (apt-get install stress-ng)" >&2; exit 69; }
cpus=${LOAD_CPUS:-$(nproc)}
nice -n "${LOAD_NICE:-0}" stress-ng --cpu "$cpus" --cpu-load "${LOAD_PERCENT:-100}" --timeout "${LOAD_TIMEOUT:-2400}s" --quiet &
load=$!
trap 'kill "$load" 2>/dev/null || true; wait "$load" 2>/dev/null || true' EXIT
echo "under-load: stress-ng pid $load keeps $cpus core(s) ${LOAD_PERCENT:-100}% busy at nice ${LOAD_NICE:-0} while: $*"
"$@"
