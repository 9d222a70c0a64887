#!/bin/sh
# Create Temporal's two PostgreSQL databases if missing and bring their schemas to the version this admin-tools
# image ships (docker-compose.yml, temporal-schema). Safe to run at every start: each step is a no-op when done.
set -eu
tool() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p 5432 --db "$@"; }
schemas=/etc/temporal/schema/postgresql/v12

for db in temporal temporal_visibility; do
  # `create` fails when the database exists, which is the state we want.
  tool "$db" create 2>/dev/null || echo "database $db exists"
done
tool temporal setup-schema -v 0.0
tool temporal update-schema -d "$schemas/temporal/versioned"
tool temporal_visibility setup-schema -v 0.0
tool temporal_visibility update-schema -d "$schemas/visibility/versioned"
echo "Temporal schemas are up to date"
