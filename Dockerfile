# incidentctl image: the worker (`python worker.py`, the default), the receiver (`incidentctl receiver`) and the
# one-shot `incidentctl admin setup`. Used by docker-compose.yml and deploy/kubernetes/ (docs/install.md); not
# built in CI, which has no Docker engine. Runs as an unprivileged user and writes nothing outside /tmp, so it
# works with a read-only root filesystem.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY incidentctl ./incidentctl
COPY workflows ./workflows
COPY activities ./activities
COPY schemas ./schemas
COPY runbooks ./runbooks
# With the otel extra: tracing is there for whoever sets OTEL_EXPORTER_OTLP_ENDPOINT, and off otherwise.
RUN pip install --no-cache-dir '.[otel]' \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin incidentctl
# receiver, worker health (/healthz, /readyz), worker metrics (Prometheus: the SDK's and incidentctl_*)
EXPOSE 9095 8080 9464
USER 10001
CMD ["python", "worker.py"]
