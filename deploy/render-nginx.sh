#!/bin/sh
# Print deploy/nginx.conf.template with its variables filled in: the one place that says where nginx
# listens, which app instances it sends to, where it logs and which TLS certificate it serves.
# POSIX sh and envsubst (gettext-base; the official nginx image has both), so the compose stack's
# nginx container renders its own configuration at start.
#
#   NGINX_LISTEN             port or address:port of plain HTTP             80
#   NGINX_SERVER_NAME        the public host name (PUBLIC_BASE_URL's)        api.example.com
#   NGINX_UPSTREAMS          app instances, host:port, space- or comma-separated  127.0.0.1:8000
#   NGINX_ACCESS_LOG         access log path, or off                         /var/log/nginx/access.log
#   NGINX_ERROR_LOG          error log path (or stderr)                      /var/log/nginx/error.log
#   NGINX_WORKER_PROCESSES   nginx worker processes                          auto
#   NGINX_TLS_CERTIFICATE    certificate chain (PEM); set with the key to serve HTTPS too   (unset)
#   NGINX_TLS_CERTIFICATE_KEY  its private key (PEM)                         (unset)
#   NGINX_TLS_LISTEN         port or address:port of HTTPS                   443
#
# Usage: deploy/render-nginx.sh [template] > nginx.conf
set -eu
template=${1:-$(dirname "$0")/nginx.conf.template}

: "${NGINX_LISTEN:=80}" "${NGINX_SERVER_NAME:=api.example.com}" "${NGINX_UPSTREAMS:=127.0.0.1:8000}"
: "${NGINX_ACCESS_LOG:=/var/log/nginx/access.log}" "${NGINX_ERROR_LOG:=/var/log/nginx/error.log}"
: "${NGINX_WORKER_PROCESSES:=auto}" "${NGINX_TLS_LISTEN:=443}"
: "${NGINX_TLS_CERTIFICATE:=}" "${NGINX_TLS_CERTIFICATE_KEY:=}"

NGINX_UPSTREAM_SERVERS=""
for upstream in $(echo "$NGINX_UPSTREAMS" | tr ',' ' '); do
  NGINX_UPSTREAM_SERVERS="${NGINX_UPSTREAM_SERVERS}        server ${upstream};
"
done
[ -n "$NGINX_UPSTREAM_SERVERS" ] || { echo "render-nginx: NGINX_UPSTREAMS names no app instance" >&2; exit 2; }
[ "$NGINX_ACCESS_LOG" = off ] || NGINX_ACCESS_LOG="$NGINX_ACCESS_LOG without_tokens"

NGINX_TLS="" NGINX_TLS_DEFAULT=""
if [ -n "$NGINX_TLS_CERTIFICATE" ] || [ -n "$NGINX_TLS_CERTIFICATE_KEY" ]; then
  [ -n "$NGINX_TLS_CERTIFICATE" ] && [ -n "$NGINX_TLS_CERTIFICATE_KEY" ] \
    || { echo "render-nginx: set both NGINX_TLS_CERTIFICATE and NGINX_TLS_CERTIFICATE_KEY" >&2; exit 2; }
  NGINX_TLS="
        listen ${NGINX_TLS_LISTEN} ssl;
        ssl_certificate ${NGINX_TLS_CERTIFICATE};
        ssl_certificate_key ${NGINX_TLS_CERTIFICATE_KEY};"
  NGINX_TLS_DEFAULT="
        listen ${NGINX_TLS_LISTEN} ssl default_server;
        ssl_reject_handshake on;"
fi

export NGINX_LISTEN NGINX_SERVER_NAME NGINX_UPSTREAM_SERVERS NGINX_ACCESS_LOG NGINX_ERROR_LOG \
       NGINX_WORKER_PROCESSES NGINX_TLS NGINX_TLS_DEFAULT
# Only these names: nginx's own $variables ($uri, $host, ...) pass through untouched.
envsubst '${NGINX_LISTEN} ${NGINX_SERVER_NAME} ${NGINX_UPSTREAM_SERVERS} ${NGINX_ACCESS_LOG}
          ${NGINX_ERROR_LOG} ${NGINX_WORKER_PROCESSES} ${NGINX_TLS} ${NGINX_TLS_DEFAULT}' < "$template"
