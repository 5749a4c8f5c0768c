# The copy worker image: the package and its pinned dependencies, no Airflow, run as non-root.
# Build from the repository root:  docker build -f deploy/docker/worker.Dockerfile -t s3fanout-worker .
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY copy_workers ./copy_workers
COPY copy_control ./copy_control
COPY airflow_plugin ./airflow_plugin
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN useradd --create-home --uid 10001 copier
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENV PYTHONUNBUFFERED=1 \
    S3FANOUT_REDIS_URL=redis://redis:6379/0
# Warm shutdown on SIGTERM: the chunk in hand finishes or goes back to the queue.
STOPSIGNAL SIGTERM
ENTRYPOINT ["s3fanout", "worker"]
CMD ["--concurrency", "2"]
