#!/usr/bin/env bash
# Records what Debezium 3.6.3's MySQL connector (embedded engine, JSON with schemas,
# topic.prefix=srv) emits for connect-mysql/tests/data/<name>_setup.sql in a database
# `golden` (its snapshot), then for <name>_changes.sql (streamed), into
# connect-mysql/tests/data/debezium_3.6.3_mysql_<name>.jsonl.
# usage: scripts/golden-mysql.sh <name> <expected events>
# With DBZ_VALUE_FORMAT=cloudevents the values are Debezium's CloudEvents (structured JSON,
# data with its schema) and the file ends in _cloudevents.jsonl.
# Needs the server of `scripts/services.sh bench-mariadb` (127.0.0.1:3308, reporting the
# MySQL 5.7 version the MySQL connector accepts), a JDK and scripts/fetch-debezium.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 expected=$2
root=$PWD
libs=${DEBEZIUM_LIBS:-$root/target/debezium-libs}
data=$root/connect-mysql/tests/data
port=${GOLDEN_MYSQL_PORT:-3308}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mysql="mariadb -uroot -h127.0.0.1 -P$port"
$mysql -e "DROP DATABASE IF EXISTS golden; CREATE DATABASE golden"
$mysql golden < "$data/${name}_setup.sql"
cat > "$work/dbz.properties" <<PROPS
name=dbz-golden
connector.class=io.debezium.connector.mysql.MySqlConnector
offset.storage=org.apache.kafka.connect.storage.MemoryOffsetBackingStore
schema.history.internal=io.debezium.relational.history.MemorySchemaHistory
database.hostname=127.0.0.1
database.port=$port
database.user=root
database.password=
database.server.id=5499
topic.prefix=srv
snapshot.mode=initial
database.include.list=golden
include.schema.changes=false
PROPS
javac -nowarn -cp "$libs/*" -d "$work" scripts/golden/DbzDump.java
(cd "$work" && java -cp "$libs/*:." DbzDump dbz.properties "$expected" \
  "sleep 1; $mysql golden < $data/${name}_changes.sql" >/dev/null)
out=$data/debezium_3.6.3_mysql_$name${DBZ_VALUE_FORMAT:+_$DBZ_VALUE_FORMAT}.jsonl
cp "$work/dbz_events.jsonl" "$out"
$mysql -e "DROP DATABASE golden"
echo "wrote $out ($(wc -l < "$out") records)"
