# syntax=docker/dockerfile:1
# PANfm: one image, two services (web and clock). See docker-compose.yml.

# --- front-end assets: uPlot from the npm registry, served from static/ (never a CDN) ---
FROM node:20.19-bookworm-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# --- runtime: slim Python, non-root, pinned dependencies, no data or secret baked in ---
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PANFM_DATA_DIR=/data \
    PANFM_PORT=3000
RUN groupadd --system --gid 10001 panfm \
 && useradd --system --uid 10001 --gid panfm --home-dir /app --shell /usr/sbin/nologin panfm
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=root:root . .
# static/vendor/ is exactly what `make node` makes: scripts/build_static.py over the npm packages.
RUN --mount=type=bind,from=assets,source=/build/node_modules,target=/app/node_modules \
    python scripts/build_static.py
# /sim is the demo profile's simulator volume: a new named volume copies this folder's owner.
RUN mkdir -p /data /sim && chown panfm:panfm /data /sim && chmod 0700 /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "panfm.ops.healthcheck", "web"]
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
