# Jobwarden: the dashboard and API under gunicorn (`jobwarden serve`, with the settings
# the package carries), as a non-root user on port 8000.
# Three stages: the pinned front-end packages (npm ci), the wheel (which carries them,
# the templates, static files and migrations), and a slim image with only that wheel
# installed. The schema is migrated on every start (`jobwarden db upgrade` is idempotent).
# compose.yaml runs this image as the web app, a worker and the monitor on PostgreSQL.

FROM node:22-bookworm-slim AS frontend
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY webapp ./webapp
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY --from=frontend /src/node_modules ./node_modules
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    JOBWARDEN_ENV=production \
    JOBWARDEN_DATA_DIR=/data
COPY --from=wheel /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin jobwarden \
 && mkdir -p /data \
 && chown jobwarden:jobwarden /data
USER jobwarden
WORKDIR /data
# The secret key and, unless DATABASE_URL says otherwise, the SQLite store.
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["sh", "-c", "jobwarden db upgrade && exec jobwarden serve --host 0.0.0.0 --port 8000"]
