#!/usr/bin/env bash
# Build the production image and test it against the machine's PostgreSQL and Redis
# (scripts/image/test.py). Starts a Docker daemon first where none runs (shared/tools/docker-here.sh
# on machines without a container registry; set DOCKER_HERE to another starter, or to "" to skip).
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER_HERE=${DOCKER_HERE-../shared/tools/docker-here.sh}
if ! docker info >/dev/null 2>&1 && [ -n "$DOCKER_HERE" ]; then
  "$DOCKER_HERE"
fi
IMAGE_NAME=${IMAGE_NAME:-users-posts}
start=$(date +%s)
make --no-print-directory image IMAGE="$IMAGE_NAME" VERSION=test
echo "==> image built in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' "$IMAGE_NAME:test" \
  | awk '{printf "%.0f MB", $1 / 1e6}')"
IMAGE="$IMAGE_NAME:test" .venv/bin/python -m scripts.image.test
