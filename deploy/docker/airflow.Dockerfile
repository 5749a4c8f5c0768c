# syntax=docker/dockerfile:1.7
# An Airflow image with s3-fanout-copy added: the official apache/airflow image, plus this
# package (the operator, the control plane) and what it needs beyond what the image already has.
# Airflow and every package the image ships stay exactly as they are. Build from the repository
# root:
#
#   docker build -f deploy/docker/airflow.Dockerfile -t s3fanout-airflow:0.1.0-airflow2.10.5 .
#   docker build -f deploy/docker/airflow.Dockerfile --build-arg AIRFLOW_VERSION=3.3.2 \
#       -t s3fanout-airflow:0.1.0-airflow3.3.2 .
ARG AIRFLOW_VERSION=2.10.5
ARG PYTHON_VERSION=3.11
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- the package as a wheel (pure Python), built with the locked build backend
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY requirements/airflow3.txt /src/requirements/airflow3.txt
RUN pip install --constraint requirements/airflow3.txt setuptools
COPY pyproject.toml README.md /src/
COPY copy_core /src/copy_core
COPY copy_workers /src/copy_workers
COPY copy_control /src/copy_control
COPY airflow_plugin /src/airflow_plugin
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# --- the official image, plus the wheel
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS airflow
ARG AIRFLOW_VERSION
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="s3fanout-airflow" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.description="apache/airflow with the s3-fanout-copy operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# The official image installs Python packages as its own user (uid 50000, gid 0).
USER 50000:0
# A failing `pip freeze` must fail the build, not leave an empty constraints file.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Everything the image already has is frozen into a constraints file, and Airflow is named in the
# same command at its own version (the image's documented way to add packages): pip can then
# only add what is missing (awscrt, for boto3[crt]) and can neither upgrade nor reinstall
# Airflow, its providers or their dependencies. A conflict fails the build instead.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/tmp/wheels \
    pip freeze | grep -E '^[A-Za-z0-9][A-Za-z0-9._-]*==' > /tmp/image-constraints.txt \
 && pip install --no-cache-dir --constraint /tmp/image-constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" \
        "$(ls /tmp/wheels/s3_fanout_copy-*.whl)[airflow]" \
 && python -c "import airflow_plugin, copy_control" \
 && rm /tmp/image-constraints.txt
