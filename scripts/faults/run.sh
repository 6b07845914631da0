#!/usr/bin/env bash
# `make faults`: the six fault scenarios, each bounded in time, loopback only.
# Installs wrk and nginx from Debian's packages when missing. Writes the tables
# to docs/faults.md. Note: scenario 1 restarts the local PostgreSQL server.
set -uo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

failed=()
for scenario in ${FAULTS:-pg_restart kill_worker races slow_clients replica_stop rolling_restart}; do
  echo "==> fault: $scenario"
  rm -f "test-artifacts/faults/${scenario//_/-}.md"
  .venv/bin/python -m "scripts.faults.$scenario" || failed+=("$scenario")
done

mkdir -p docs
{
  echo "# Fault tests: last results"
  echo
  echo "\`make faults\` on $(nproc) cores, PostgreSQL $(ls /etc/postgresql | sort | tail -1), $(date -u +%Y-%m-%d)."
  echo "Each scenario starts gunicorn (production settings, sync workers) on a throwaway database."
  echo
  for table in pg-restart kill-worker races slow-clients replica-stop rolling-restart; do
    [ -f "test-artifacts/faults/$table.md" ] && cat "test-artifacts/faults/$table.md" && echo
  done
} > docs/faults.md.new
mv docs/faults.md.new docs/faults.md

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED fault scenarios: ${failed[*]}" >&2
  exit 1
fi
echo "All fault scenarios passed; tables in docs/faults.md"
