# Walkthrough for a district deployment: stateless app servers in front of one PostgreSQL.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WALKTHROUGH_ENV=production

RUN useradd --create-home --uid 10001 walkthrough
WORKDIR /srv/walkthrough

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
# Editable install: the migrations/ folder stays next to the app package.
RUN pip install -e . && chown -R walkthrough:walkthrough /srv/walkthrough

USER walkthrough
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
# Migrations first (safe to run from several containers: Alembic takes a lock on PostgreSQL
# through its version table transaction), then uvicorn with workers. X-Forwarded-For is
# believed only from WALKTHROUGH_TRUSTED_PROXIES (set it to your load balancer's addresses).
CMD ["sh", "-c", "walkthrough migrate && exec walkthrough serve --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY:-2}"]
