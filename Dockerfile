# The production image: `make image`, or `docker build -t users-posts .`.
#
#   docker run --env-file app.env --read-only --tmpfs /tmp users-posts              # gunicorn (default)
#   docker run --env-file app.env users-posts flask db upgrade                      # migrations, once per release
#   docker run --env-file app.env -it users-posts flask users create-admin EMAIL    # one-shot commands
#   docker run --env-file app.env --read-only --tmpfs /tmp users-posts flask worker # the mail worker
#
# Configuration comes from the environment only (docs/configuration.md); nothing is baked in but
# APP_ENV=production and where to listen. gunicorn keeps its metrics files in a fresh folder under
# /tmp (PROMETHEUS_MULTIPROC_DIR unset), which is why a read-only container needs a tmpfs there.
# Stop it with SIGTERM (`docker stop`): serve.py makes /health/ready answer 503 and keeps serving
# for SHUTDOWN_DELAY (4 s) so load balancers take the instance out, then gunicorn finishes the
# requests in flight (GUNICORN_GRACEFUL_TIMEOUT, 5 s) and exits: 9 s in all, inside docker stop's
# default 10 s. Raise both, and the stop timeout with them, where requests or probes are slower.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the app's dependencies (requirements.txt only) in a virtualenv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /venv
COPY requirements.txt /tmp/requirements.txt
RUN /venv/bin/pip install --quiet -r /tmp/requirements.txt \
 && /venv/bin/pip uninstall --quiet --yes pip setuptools \
 && find /venv -name '__pycache__' -prune -exec rm -rf {} + \
 && /venv/bin/python -m compileall -q -j 0 /venv

# ---- runtime: the base image, the virtualenv, the code; no compiler, no pip, no tests ----
FROM ${PYTHON_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=""
ARG CREATED=""
LABEL org.opencontainers.image.title="users-posts" \
      org.opencontainers.image.description="Users & Posts API: Flask under gunicorn" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}"

COPY --from=build /venv /venv
WORKDIR /app
COPY config.py wsgi.py gunicorn.conf.py serve.py ./
COPY migrations/ migrations/
COPY app/ app/
COPY deploy/image/healthcheck.py /usr/local/lib/healthcheck.py
# A fixed, unprivileged user that owns nothing in the image: the code is root's and read-only to
# it (written into /etc/passwd directly: the slimmest bases have no useradd). Bytecode is compiled
# now, since a read-only root filesystem cannot take it later. `/` is made world-readable in case
# the base was packed from a private folder (the local stand-in for the python image is).
RUN chmod 0755 / \
 && echo 'app:x:10001:10001:users-posts:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'app:x:10001:' >> /etc/group \
 && python -m compileall -q /app

ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLASK_APP=wsgi.py \
    FLASK_SKIP_DOTENV=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    SHUTDOWN_DELAY=4 \
    GUNICORN_GRACEFUL_TIMEOUT=5
USER app
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/healthcheck.py"]
# The web server goes through serve.py (its lame-duck period on SIGTERM); a command given to
# `docker run` (flask worker, flask db upgrade) replaces all of this and runs as it is.
CMD ["python", "serve.py", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
