# syntax=docker/dockerfile:1
# Build: docker build -t ams .
# Run:   docker run -e DATABASE_URL=postgresql://... -e AUTH__JWT_SECRET=... -e MIGRATE_ON_START=1 -p 8000:8000 ams

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/srv \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000
RUN groupadd --system ams && useradd --system --gid ams --home-dir /srv --no-create-home ams
WORKDIR /srv
COPY --from=build /opt/venv /opt/venv
COPY --chown=ams:ams alembic.ini ./
COPY --chown=ams:ams migrations ./migrations
COPY --chown=ams:ams app ./app
USER ams
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=2)"]
# exec form: SIGTERM reaches uvicorn, which stops accepting, lets in-flight requests finish
# (20 s grace) and exits. `ams serve` migrates first when MIGRATE_ON_START=1.
STOPSIGNAL SIGTERM
CMD ["ams", "serve"]
