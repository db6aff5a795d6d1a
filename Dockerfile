# One image for the whole project: every service is a command of it
# (`toilkit serve gateway`, `toilkit bootstrap`, `python -m toilkit.standins.slack`, ...).
# docker-compose.yml runs it against LocalStack; on AWS the same image runs on ECS.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY toilkit ./toilkit
# Wheels for toilkit and every dependency, so the final stage needs no compiler or cache.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# The catalog is looked up next to the source tree by default, which an installed package
# does not have: the gateway and the batch service are pointed at the copy below.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOILKIT_CATALOG_PATH=/app/catalog/demo.yaml \
    TOILKIT_BATCH_CATALOG_PATH=/app/catalog/demo.yaml \
    TOILKIT_BATCH_LOG_DIR=/app/state/runs
RUN --mount=from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels toilkit \
    && useradd --create-home --uid 10001 toilkit \
    && mkdir -p /app/state \
    && chown toilkit /app/state
WORKDIR /app
COPY catalog ./catalog
USER toilkit
ENTRYPOINT ["toilkit"]
CMD ["--help"]
