# One image for the whole project: every service is a command of it
# (`toilkit serve gateway`, `toilkit bootstrap`, `python -m toilkit.standins.slack`, ...).
# docker-compose.yml runs it against LocalStack; on AWS the same image runs on ECS.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY requirements-runtime.lock pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY toilkit ./toilkit
# Wheels of exactly the locked dependencies (`make lock`), each download checked against its
# hash, and of toilkit itself: the final stage installs /wheels alone, with no compiler,
# index or cache.
RUN pip wheel --no-cache-dir --wheel-dir /wheels --require-hashes -r requirements-runtime.lock \
    && pip wheel --no-cache-dir --wheel-dir /wheels --no-deps .

FROM python:3.11-slim-bookworm
# The catalog is looked up next to the source tree by default, which an installed package
# does not have: the gateway and the batch service are pointed at the copy below.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOILKIT_CATALOG_PATH=/app/catalog/demo.yaml \
    TOILKIT_BATCH_CATALOG_PATH=/app/catalog/demo.yaml \
    TOILKIT_BATCH_LOG_DIR=/app/state/runs
RUN --mount=from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
    && useradd --create-home --uid 10001 toilkit \
    && mkdir -p /app/state \
    && chown toilkit /app/state
WORKDIR /app
COPY catalog ./catalog
# By uid: a runtime that checks for a non-root user cannot resolve a name (hadolint DL3066).
USER 10001
ENTRYPOINT ["toilkit"]
CMD ["--help"]
