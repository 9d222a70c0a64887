#!/usr/bin/env bash
# Set up, then run the local demo: embedded Temporal server + worker + one incident run to completion.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/incidentctl demo "$@"
