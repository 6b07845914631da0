#!/usr/bin/env bash
# Exercise the README's `make run` from outside, with curl, the way a client would.
# Usage: scripts/smoke.sh [port]   (DATABASE_URL, if set, is passed through to make run)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${1:-8765}"
BASE="http://127.0.0.1:$PORT"
LOG=$(mktemp)

PORT="$PORT" make run >"$LOG" 2>&1 &
RUN_PID=$!
cleanup() { pkill -TERM -P "$RUN_PID" 2>/dev/null || true; kill "$RUN_PID" 2>/dev/null || true; wait "$RUN_PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 120); do curl -fsS "$BASE/health" >/dev/null 2>&1 && break; sleep 1; done

fail() { echo "SMOKE FAIL: $*"; tail -20 "$LOG"; exit 1; }
expect() {  # expect STATUS METHOD PATH [curl args...] ; sets BODY and HEADERS
  local status=$1 method=$2 path=$3; shift 3
  HEADERS=$(mktemp)
  BODY=$(curl -sS -X "$method" -D "$HEADERS" -o - -w '\n%{http_code}' "$BASE$path" "$@")
  local got=${BODY##*$'\n'}; BODY=${BODY%$'\n'*}
  [ "$got" = "$status" ] || fail "$method $path: expected $status, got $got: $BODY"
  echo "ok  $status $method $path"
}
json() {  # json a.b.0: that value of the last body
  python3 -c 'import functools, json, sys
doc = json.loads(sys.argv[1])
print(functools.reduce(lambda v, k: v[int(k)] if isinstance(v, list) else v[k], sys.argv[2].split("."), doc))' "$BODY" "$1"
}

EMAIL="smoke-$$-$RANDOM@example.com"
expect 200 GET /
[ "$(json links.docs)" = "/docs" ] || fail "GET / does not link the docs"
expect 200 GET /health
expect 200 GET /health/ready
expect 201 POST /api/users -H 'Content-Type: application/json' \
  -d "{\"email\": \"$EMAIL\", \"name\": \"Smoke\", \"password\": \"Sm0keTestPw\"}"
grep -qi '^location: /api/users/' "$HEADERS" || fail "no Location header"
expect 409 POST /api/users -H 'Content-Type: application/json' \
  -d "{\"email\": \"${EMAIL^^}\", \"name\": \"Smoke\", \"password\": \"Sm0keTestPw\"}"
grep -qi '^content-type: application/problem+json' "$HEADERS" || fail "409 is not problem JSON"
expect 422 POST /api/users -H 'Content-Type: application/json' \
  -d '{"email": "x@example.com", "name": "X", "password": "Sm0keTestPw", "role": "admin"}'
[ "$(json errors.role.0)" = "Unknown field." ] || fail "422 does not name role"
expect 415 POST /api/users -H 'Content-Type: text/plain' -d 'hello'
expect 400 POST /api/users -H 'Content-Type: application/json' -d '{"email":'
expect 200 POST /api/auth/login -H 'Content-Type: application/json' \
  -d "{\"email\": \"$EMAIL\", \"password\": \"Sm0keTestPw\"}"
TOKEN=$(json access_token)
expect 401 GET /api/users/me
grep -qi '^www-authenticate: bearer' "$HEADERS" || fail "401 without WWW-Authenticate"
expect 200 GET /api/users/me -H "Authorization: Bearer $TOKEN"
for i in 1 2 3; do
  expect 201 POST /api/posts -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"title\": \"Smoke $i\", \"body\": \"Hello\"}"
done
expect 200 GET "/api/posts?limit=2"
grep -qi '^link: <.*cursor=.*>; rel="next"' "$HEADERS" || fail "no Link rel=next"
expect 404 GET /api/nope
expect 405 DELETE /api/posts
grep -qi '^allow:' "$HEADERS" || fail "405 without Allow"
expect 204 POST /api/auth/logout -H "Authorization: Bearer $TOKEN"
expect 401 GET /api/users/me -H "Authorization: Bearer $TOKEN"
expect 200 GET /openapi.json
expect 200 GET /docs
echo "smoke: all checks passed against make run on $BASE"
