#!/bin/sh
# Create the namespace incidents live in, unless it exists (docker-compose.yml, temporal-namespace). The server's
# port opens before it serves, so wait for its health check first (a bounded wait; compose restarts us after).
set -eu
tries=0
until temporal operator cluster health >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    echo "Temporal at $TEMPORAL_ADDRESS is not healthy after $tries checks" >&2
    exit 1
  fi
  sleep 2
done
if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $TEMPORAL_NAMESPACE exists"
else
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$NAMESPACE_RETENTION"
  echo "namespace $TEMPORAL_NAMESPACE created (retention $NAMESPACE_RETENTION)"
fi
