"""A small Kubernetes API server for tests and the local demo."""
