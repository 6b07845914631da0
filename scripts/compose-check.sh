#!/usr/bin/env bash
# Validate deploy/compose.yaml with the example env file (the real one, deploy/app.env, is not
# committed): `docker compose config` where the compose plugin exists, else Debian's docker-compose.
set -euo pipefail
cd "$(dirname "$0")/../deploy"
export APP_ENV_FILE=env.example
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi
"${compose[@]}" -f compose.yaml --env-file env.example config --quiet
services=$("${compose[@]}" -f compose.yaml --env-file env.example config --services | sort | tr '\n' ' ')
echo "deploy/compose.yaml is valid (${compose[*]}): $services"
