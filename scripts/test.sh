#!/usr/bin/env bash
# Set up, then lint, validate the shipped runbooks and run the test suite (real Temporal dev server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/incidentctl runbook validate runbooks/
exec .venv/bin/python -m pytest -q "$@"
