#!/usr/bin/env bash
# `make run`: gunicorn and one mail worker (`flask worker`) side by side, stopped together.
# Ctrl-C (SIGINT to the whole terminal group) or a SIGTERM to this script stops both: gunicorn
# finishes its requests, the worker the message in hand. If either exits on its own (a port
# already taken, a database that does not answer), the other is stopped and its status returned.
set -uo pipefail
BIN="${BIN:-.venv/bin}"

"$BIN/gunicorn" -c gunicorn.conf.py wsgi:app &
web=$!
"$BIN/flask" worker &
worker=$!

stop() {
  kill -TERM "$web" "$worker" 2>/dev/null
  wait "$web" "$worker" 2>/dev/null
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

wait -n "$web" "$worker"
status=$?
stop
exit "$status"
