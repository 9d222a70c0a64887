"""Kubernetes actions (official `kubernetes` client)."""
