# One image for the flows (Prefect ECS pool) and the predictions API (Lambda container image, or
# `lof serve` on any container host). Built by
# `prefect deploy --prefect-file deployments/prefect-ecs.yaml` or by hand from the project root:
#   docker build -t lof .
# Its install step is scripts/install, the one CI runs: the hashed lock of the image's extras
# (requirements/aws-lambda.lock), then lof as a built wheel.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    GIT_PYTHON_REFRESH=quiet \
    LOF_HOME=/tmp/lof \
    PREFECT_HOME=/tmp/lof/prefect \
    MPLCONFIGDIR=/tmp/lof/matplotlib \
    PATH=/opt/lof/.venv/bin:$PATH

WORKDIR /opt/lof
# Dependencies first (cached while only code changes): exactly the lock, every file hash-checked.
COPY pyproject.toml README.md ./
COPY requirements/aws-lambda.lock requirements/aws-lambda.lock
COPY scripts/install scripts/check-lock scripts/
RUN bash scripts/install /opt/lof/.venv aws,lambda deps

# lof itself as a wheel built from the code (not an editable install); the library's source
# leaves the image, the flows' files stay: they are the deployments' entrypoints.
COPY lof lof
COPY flows flows
RUN bash scripts/install /opt/lof/.venv aws,lambda wheel && rm -rf lof
COPY prefect.yaml prefect.yaml
COPY deployments deployments

# Non-root; LOF_HOME is the only writable place (Lambda allows /tmp only).
RUN useradd --system --uid 10001 lof && mkdir -p /tmp/lof && chown lof /tmp/lof
USER lof

# Default: the API. The Prefect ECS pool runs `prefect flow-run execute` as its command; the
# Lambda template sets the entry point to the runtime interface client and lof.api.handler.
EXPOSE 8000
CMD ["lof", "serve", "--host", "0.0.0.0", "--port", "8000"]
