#!/bin/sh
# The schema job of docker-compose.temporal.yml (service temporal-admin-tools, image
# temporalio/admin-tools): creates Temporal's two databases on PostgreSQL, `temporal` and
# `temporal_visibility`, sets their schema up and brings it to the version the admin tools ship,
# which is the server's. Each step leaves a database that is already there and up to date as it
# is, so the job runs at every `up`; after the images are upgraded (together), it migrates the
# schema before the new server starts.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS: the PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER: the PostgreSQL user}"
: "${SQL_PASSWORD:?SQL_PASSWORD: the PostgreSQL password (temporal-sql-tool reads it)}"
DB_PORT="${DB_PORT:-5432}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12
TRIES="${TRIES:-30}"

echo "waiting for PostgreSQL on ${POSTGRES_SEEDS}:${DB_PORT}"
n=1
until nc -z -w 5 "$POSTGRES_SEEDS" "$DB_PORT"; do
  if [ "$n" -ge "$TRIES" ]; then
    echo "PostgreSQL did not answer on ${POSTGRES_SEEDS}:${DB_PORT} after $TRIES tries" >&2
    exit 1
  fi
  n=$((n + 1))
  sleep 2
done

# Global options come before the command (create, setup-schema, update-schema).
sql_tool() {
  temporal-sql-tool --plugin postgres12 --endpoint "$POSTGRES_SEEDS" --port "$DB_PORT" --user "$POSTGRES_USER" "$@"
}

# database NAME SCHEMA: the database, its versioning tables at 0.0, then every versioned step.
database() {
  echo "database $1: create, set up, update to the admin tools' schema"
  sql_tool --database "$1" create
  sql_tool --database "$1" setup-schema -v 0.0
  sql_tool --database "$1" update-schema -d "$SCHEMA_DIR/$2/versioned"
}

database temporal temporal
database temporal_visibility visibility
echo "Temporal's schema is up to date"
