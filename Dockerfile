# syntax=docker/dockerfile:1
# reliefdocs worker image: Python 3.11 slim (Debian bookworm), LibreOffice Writer without a GUI,
# its UNO bindings for warm mode, the Liberation and DejaVu fonts, the package and its data.
# Build from the repository root:  docker build -t reliefdocs:0.1.0 .
# Run:  docker run --rm -e RELIEFDOCS_STORAGE_URL=... -e RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS=... reliefdocs:0.1.0
# (the command defaults to `reliefdocs worker`; every setting is a RELIEFDOCS_* variable:
# docs/configuration.md).

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- build: wheels for the package and its dependencies (no compiler needed at run time)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service/ service/
RUN pip wheel --wheel-dir /wheels .

# ---- run
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# LibreOffice converts DOCX to PDF; python3-uno (Debian's /usr/bin/python3) drives it in warm
# mode (RELIEFDOCS_LIBREOFFICE_PYTHON); fonts-liberation2 has the Times-metric serif the
# pleading paper and the page-number stamps use; fonts-dejavu-core covers the other scripts,
# fonts-symbola the symbols and emoji that names sometimes carry (no glyph would print a box).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libreoffice-writer-nogui \
      python3-uno \
      tini \
      fonts-liberation2 \
      fonts-dejavu-core \
      fonts-symbola \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels reliefdocs && rm -rf /wheels

# Data the settings point to (the defaults are relative to the source tree, not the installed package).
COPY templates/ /app/templates/
COPY schemas/ /app/schemas/

# A non-root user with a writable work folder (LibreOffice profiles, rendered documents, PDFs).
RUN groupadd --system --gid 10001 reliefdocs \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/reliefdocs --create-home \
      --shell /usr/sbin/nologin reliefdocs \
 && mkdir -p /work \
 && chown 10001:10001 /work

ENV RELIEFDOCS_TEMPLATES_DIR=/app/templates \
    RELIEFDOCS_SCHEMAS_DIR=/app/schemas \
    RELIEFDOCS_WORK_DIR=/work \
    RELIEFDOCS_METRICS_PORT=9400 \
    HOME=/home/reliefdocs

USER 10001:10001
WORKDIR /work
EXPOSE 9400

# /healthz answers 200 while the worker can make progress: its loop, or the wait or retry it is in,
# beat within 60 s, whatever the broker and the store do (service/metrics.py); urllib raises on 503.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RELIEFDOCS_METRICS_PORT', '9400'), timeout=4)"]

# tini is PID 1: it forwards SIGTERM to the worker and reaps the processes reparented to it
# (LibreOffice's own children, whose parent died); -s also makes it a subreaper where it is not
# PID 1 (docker run --init). Python as PID 1 would leave them as zombies.
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "reliefdocs"]
CMD ["worker"]
