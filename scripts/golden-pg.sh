#!/usr/bin/env bash
# Regenerates connect-postgres/tests/data/debezium_3.6.3_pg_types.jsonl: what the Debezium
# 3.6.3 embedded engine emits (JSON with schemas, transaction metadata on) for the table
# of pg_types_setup.sql, snapshot first, then the transaction of pg_types_changes.sql.
# With DBZ_VALUE_FORMAT=cloudevents the values are Debezium's CloudEvents (structured JSON,
# data with its schema) and the file is debezium_3.6.3_pg_types_cloudevents.jsonl.
# Needs the local PostgreSQL (scripts/services.sh), a JDK and scripts/fetch-debezium.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
libs=${DEBEZIUM_LIBS:-$root/target/debezium-libs}
data=$root/connect-postgres/tests/data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PGPASSWORD=postgres
psql="psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres"
$psql -d postgres -c "DROP DATABASE IF EXISTS golden_types WITH (FORCE)" -c "CREATE DATABASE golden_types"
$psql -d golden_types -f "$data/pg_types_setup.sql"
cat > "$work/dbz.properties" <<PROPS
name=dbz-golden
connector.class=io.debezium.connector.postgresql.PostgresConnector
offset.storage=org.apache.kafka.connect.storage.MemoryOffsetBackingStore
database.hostname=127.0.0.1
database.port=5432
database.user=postgres
database.password=postgres
database.dbname=golden_types
database.sslmode=disable
topic.prefix=srv
plugin.name=pgoutput
slot.name=golden_types
publication.autocreate.mode=filtered
snapshot.mode=initial
provide.transaction.metadata=true
table.include.list=public.t
PROPS
javac -nowarn -cp "$libs/*" -d "$work" scripts/golden/DbzDump.java
(cd "$work" && java -cp "$libs/*:." DbzDump dbz.properties 7 \
  "sleep 1; $psql -d golden_types -f $data/pg_types_changes.sql" >/dev/null)
out=$data/debezium_3.6.3_pg_types${DBZ_VALUE_FORMAT:+_$DBZ_VALUE_FORMAT}.jsonl
cp "$work/dbz_events.jsonl" "$out"
$psql -d postgres -c "SELECT pg_drop_replication_slot('golden_types')" -c "DROP DATABASE golden_types WITH (FORCE)" >/dev/null
echo "wrote $out ($(wc -l < "$out") records)"
