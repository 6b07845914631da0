#!/usr/bin/env bash
# `make fuzz`: Schemathesis against the app's own /openapi.json, signed in as a real user.
#
# Starts gunicorn (production settings) on a throwaway PostgreSQL database on a free
# loopback port, then runs Schemathesis with the contract checks. FUZZ_EXAMPLES
# bounds the examples per operation per phase; FUZZ_MAX_TIME (seconds), when set,
# makes fuzzing repeat until that budget is spent. The database is dropped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=.venv/bin
PGURL_BASE=${FUZZ_PG:-postgresql://postgres@127.0.0.1:5432}
DB="app_test_hardening_fuzz_$$"
EXAMPLES=${FUZZ_EXAMPLES:-100}
MAX_TIME=${FUZZ_MAX_TIME:-}
CHECKS=${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,unsupported_method,allow_header_conformance,ignored_auth,use_after_free,ensure_resource_availability,missing_required_header}
REPORT_DIR=${FUZZ_REPORT_DIR:-test-artifacts/fuzz}
PORT=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

GUNICORN_PID=""
cleanup() {
  if [ -n "$GUNICORN_PID" ]; then kill "$GUNICORN_PID" 2>/dev/null || true; wait "$GUNICORN_PID" 2>/dev/null || true; fi
  psql "$PGURL_BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$PGURL_BASE/postgres" -qc "CREATE DATABASE $DB"
export APP_ENV=production DATABASE_URL="$PGURL_BASE/$DB" PORT WEB_CONCURRENCY=${FUZZ_WORKERS:-2}
export PUBLIC_BASE_URL="$BASE"
SECRET_KEY=$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(48))')
JWT_SECRET_KEY=$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(48))')
export SECRET_KEY JWT_SECRET_KEY
# The limits stay on (their code runs), set high enough not to starve the fuzzer.
export RATELIMIT_LOGIN=100000/minute RATELIMIT_REGISTER=100000/minute RATELIMIT_WRITE=100000/minute
export RATELIMIT_READ=1000000/minute RATELIMIT_READ_USER=1000000/minute RATELIMIT_SEARCH=1000000/minute
export LOGIN_FAILURES_PER_EMAIL_IP=100000/minute LOGIN_FAILURES_PER_EMAIL=100000/minute RATELIMIT_ACCOUNT_MAIL=100000/minute
# Production requires a mail server; requests only queue mail, and no worker runs during the fuzzing.
export MAIL_SERVER=127.0.0.1
export BCRYPT_ROUNDS=4 LOG_LEVEL=WARNING
unset REDIS_URL

$BIN/flask db upgrade >/dev/null
export FUZZ_ADMIN_EMAIL=fuzz-admin@example.com FUZZ_ADMIN_PASSWORD=Fuzz-Adm1n-Passw0rd
$BIN/flask users create-admin "$FUZZ_ADMIN_EMAIL" --password "$FUZZ_ADMIN_PASSWORD" >/dev/null
$BIN/gunicorn -c gunicorn.conf.py wsgi:app &
GUNICORN_PID=$!
for _ in $(seq 100); do curl -sf "$BASE/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "$BASE/health" >/dev/null

mkdir -p "$REPORT_DIR"
export FUZZ_BASE_URL="$BASE" SCHEMATHESIS_HOOKS=scripts.fuzz.hooks PYTHONPATH=.
echo "==> schemathesis: $EXAMPLES examples per operation${MAX_TIME:+, for ${MAX_TIME}s}, checks: $CHECKS"
$BIN/st run "$BASE/openapi.json" \
  --checks "$CHECKS" \
  --max-examples "$EXAMPLES" \
  ${MAX_TIME:+--max-time "$MAX_TIME"} \
  --seed "${FUZZ_SEED:-20261126}" \
  --request-timeout 10 \
  --workers "${FUZZ_CLIENTS:-1}" \
  --report junit,ndjson --report-dir "$REPORT_DIR" \
  "$@"
