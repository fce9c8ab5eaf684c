# One image for the flows (Prefect ECS pool) and the predictions API (Lambda container image, or
# `lof serve` on any container host). Built by `prefect deploy --prefect-file deployments/prefect-ecs.yaml`
# hand from the project root:  docker build -t lof .
# Its install step is scripts/install, the one CI runs, with the versions of requirements.lock.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    GIT_PYTHON_REFRESH=quiet \
    LOF_HOME=/tmp/lof \
    PATH=/opt/lof/.venv/bin:$PATH

WORKDIR /opt/lof
# Dependencies first (cached while only code changes): the lock and the project metadata.
COPY pyproject.toml requirements.lock README.md ./
COPY scripts/install scripts/install
COPY lof/__init__.py lof/__init__.py
COPY flows/__init__.py flows/__init__.py
RUN bash scripts/install /opt/lof/.venv aws,lambda

COPY lof lof
COPY flows flows
COPY prefect.yaml prefect.yaml
COPY deployments deployments

# Non-root; LOF_HOME is the only writable place (Lambda allows /tmp only).
RUN useradd --system --uid 10001 lof && mkdir -p /tmp/lof && chown lof /tmp/lof
USER lof

# Default: the API. The Prefect ECS pool runs `prefect flow-run execute` as its command; the
# Lambda template sets the entry point to the runtime interface client and lof.api.handler.
EXPOSE 8000
CMD ["lof", "serve", "--host", "0.0.0.0", "--port", "8000"]
