# incidentctl worker image (for docker-compose.yml; not built in CI, which has no Docker engine).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY incidentctl ./incidentctl
COPY workflows ./workflows
COPY activities ./activities
COPY schemas ./schemas
COPY runbooks ./runbooks
RUN pip install --no-cache-dir .
ENV TEMPORAL_ADDRESS=temporal:7233
CMD ["python", "worker.py"]
