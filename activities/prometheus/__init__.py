"""`prometheus.*`: read-only actions that ask a Prometheus server (HTTP API v1) for samples of a PromQL query."""
