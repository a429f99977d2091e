# The ia-modules image: one image for the worker and the one-shot `migrate` (docker-compose.yml runs both).
#
#   docker build -t ia-modules .
#   docker run --rm -e IA_BROKER=kafka://broker:9092 ia-modules            # a worker (the default command)
#   docker run --rm -e IA_DATABASE_URL=postgresql://... ia-modules migrate
#
# No `embedded` extra: in a container the broker and the database are real services (IA_BROKER, IA_DATABASE_URL).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IA_PIPELINES_DIR=/app/pipelines \
    IA_WEB_PORT=6066

WORKDIR /app

# The dependencies first, in their own layer, so that editing a step or a pipeline does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The repository itself (see .dockerignore), installed editable as DESIGN.md says: the package's code, `steps/`,
# `pipelines/` and `migrations/` are all read from /app, where users mount or copy their own.
COPY . .
# Never root at run time. /app stays root-owned and read-only to that user, except `.ia/`: the project's local
# state folder, where the worker keeps what it writes to disk (Faust's data dir).
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/ia --shell /usr/sbin/nologin ia \
    && mkdir -p /app/.ia \
    && chown ia:ia /app/.ia
USER ia

EXPOSE 6066

# /health answers 200 once the worker consumes its partitions, 503 before (urlopen raises on 503: unhealthy).
# A `migrate` container exits long before the first check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('IA_WEB_PORT', '6066') + '/health', timeout=4)"]

ENTRYPOINT ["ia-modules"]
CMD ["worker"]
