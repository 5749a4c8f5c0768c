# syntax=docker/dockerfile:1.7
# The copy worker image: the package and its runtime dependencies, pinned to the versions of
# the project's lock file, no Airflow, run as uid 10001. Build from the repository root:
#
#   docker build -f deploy/docker/worker.Dockerfile -t s3fanout-worker:0.1.0 .
#
# Pin the base by digest for a reproducible build:
#   --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11.11-slim-bookworm` prints the digest).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: a virtualenv with the package and exactly the locked versions of its dependencies
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# requirements/airflow3.txt pins every environment of the project (Airflow, dev tools). As a
# constraints file it pins only what this install pulls in: boto3[crt], celery[redis], redis and
# their dependencies. Airflow is never requested, so it is never installed. The lock is resolved
# for Python 3.11 on Linux, like this image.
COPY requirements/airflow3.txt /src/requirements/airflow3.txt
COPY deploy/docker/check_lock.py /src/check_lock.py
# The build backend comes from the lock too, so the wheel is built without unpinned downloads.
RUN pip install --constraint requirements/airflow3.txt setuptools
COPY pyproject.toml README.md /src/
COPY copy_core /src/copy_core
COPY copy_workers /src/copy_workers
COPY copy_control /src/copy_control
COPY airflow_plugin /src/airflow_plugin
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/s3fanout \
 && pip --python /opt/s3fanout/bin/python install \
        --constraint requirements/airflow3.txt /wheels/*.whl \
 && /opt/s3fanout/bin/python check_lock.py requirements/airflow3.txt \
 && /opt/s3fanout/bin/python -c "import copy_workers.celery_app, copy_workers.tasks"

# --- runtime: the virtualenv on a clean base, no compiler, no pip, no source tree
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="s3fanout-worker" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.description="s3-fanout-copy worker: a Celery worker on queue s3copy" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 copier \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin copier
COPY --from=build /opt/s3fanout /opt/s3fanout
# Bytecode was compiled at install time: nothing is written at run time, so the root
# filesystem can be read-only (Kubernetes: readOnlyRootFilesystem, compose: read_only).
ENV PATH=/opt/s3fanout/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /tmp
# Prometheus metrics (--metrics-port).
EXPOSE 9102
# SIGTERM is Celery's warm shutdown: the worker stops taking chunks, finishes the ones in hand,
# and hands back the ones it had reserved; a chunk cut short by a later SIGKILL comes back after
# the visibility timeout (S3FANOUT_VISIBILITY_TIMEOUT_S) and copies only its unfinished keys.
STOPSIGNAL SIGTERM
# Alive = the worker answers a broadcast ping through the broker. The node name is the worker's
# default, s3fanout@<hostname>: do not pass --hostname, or this check pings a node that is not
# there. Reads the broker URL from S3FANOUT_REDIS_URL, like the worker.
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD celery -A copy_workers.celery_app inspect ping --timeout 10 \
        --destination "s3fanout@$HOSTNAME" > /dev/null || exit 1
ENTRYPOINT ["s3fanout", "worker"]
CMD ["--concurrency", "2", "--metrics-port", "9102"]
