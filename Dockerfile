# Jobwarden: the dashboard and API under gunicorn, as a non-root user on port 8000.
# The schema is migrated on every start (`jobwarden db upgrade` is idempotent).

FROM node:20-bookworm-slim AS frontend
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    JOBWARDEN_ENV=production \
    DATABASE_URL=sqlite:////app/instance/jobwarden.db
WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin jobwarden
COPY pyproject.toml README.md gunicorn.conf.py ./
COPY webapp ./webapp
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY --from=frontend /app/node_modules ./node_modules
# Editable install: the templates, static files and migrations stay beside the package.
RUN pip install -e . \
 && mkdir -p /app/instance \
 && chown jobwarden:jobwarden /app/instance
USER jobwarden
VOLUME ["/app/instance"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["sh", "-c", "jobwarden db upgrade && exec gunicorn --config gunicorn.conf.py --bind 0.0.0.0:8000 'webapp:create_app()'"]
