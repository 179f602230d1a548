#!/usr/bin/env bash
# Installs (if missing), configures and starts what the test suite needs on 127.0.0.1:
#   PostgreSQL with wal_level=logical (superuser postgres/postgres over TCP, replication allowed)
#   MariaDB with a ROW binlog and TLS (root with an empty password over TCP)
#   second PostgreSQL (5433) and MariaDB (3307) servers that tests may restart
#   a Kafka-protocol broker: tansu, in memory on 127.0.0.1:9092 (`services.sh kafka` alone;
#   a first install builds it from crates.io, about 11 minutes on 2 cores)
# `services.sh bench-mariadb` starts the MySQL benchmark's server instead (127.0.0.1:3308).
# Idempotent: safe to run again; restarts a server only when its CDC settings are missing.
# Works without systemd (as in CI containers). Needs root.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

apt_updated=0
need_pkg() { # need_pkg <command> <debian package>
  if ! command -v "$1" >/dev/null 2>&1; then
    if [ "$apt_updated" = 0 ]; then
      log "apt-get update"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      apt_updated=1
    fi
    log "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}

wait_for() { # wait_for <description> <command...>: poll up to 60 s
  local what=$1; shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "timed out waiting for $what"; return 1
}

# Test certificates: a CA, a server certificate it signed for 127.0.0.1/localhost, and a
# second, unrelated CA (for the wrong-CA test). Made once; tests read them from here.
TLS_DIR=/var/lib/connect-test-tls
setup_tls_certs() {
  need_pkg openssl openssl
  [ -s "$TLS_DIR/server.crt" ] && [ -s "$TLS_DIR/other-ca.crt" ] && return 0
  log "creating test TLS certificates in $TLS_DIR"
  mkdir -p "$TLS_DIR"
  local ca_ext="-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
  # shellcheck disable=SC2086
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=connect test CA" $ca_ext \
    -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" 2>/dev/null
  # shellcheck disable=SC2086
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=connect other CA" $ca_ext \
    -keyout "$TLS_DIR/other-ca.key" -out "$TLS_DIR/other-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$TLS_DIR/server.ext"
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days 3650 -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.crt" 2>/dev/null
  chown -R postgres:postgres "$TLS_DIR"
  chmod 600 "$TLS_DIR"/*.key
  chmod 644 "$TLS_DIR"/*.crt
}

# ---------------------------------------------------------------- PostgreSQL
setup_postgres() {
  need_pkg pg_ctlcluster postgresql
  local version conf_dir
  version=$(ls /etc/postgresql | grep -E '^[0-9]+$' | sort -V | tail -n 1)
  conf_dir=/etc/postgresql/$version/main
  [ -d "$conf_dir" ] || pg_createcluster "$version" main >/dev/null
  mkdir -p "$conf_dir/conf.d"
  grep -q "^include_dir = 'conf.d'" "$conf_dir/postgresql.conf" \
    || echo "include_dir = 'conf.d'" >> "$conf_dir/postgresql.conf"
  setup_tls_certs
  cat > "$conf_dir/conf.d/50-connect-cdc.conf" <<CONF
# written by connect's scripts/services.sh
listen_addresses = '127.0.0.1'
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
ssl = on
ssl_cert_file = '$TLS_DIR/server.crt'
ssl_key_file = '$TLS_DIR/server.key'
CONF
  local hba=$conf_dir/pg_hba.conf
  grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32' "$hba" \
    || echo "host all all 127.0.0.1/32 scram-sha-256" >> "$hba"
  grep -qE '^host\s+replication\s+all\s+127\.0\.0\.1/32' "$hba" \
    || echo "host replication all 127.0.0.1/32 scram-sha-256" >> "$hba"
  mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
  if pg_isready -q -h 127.0.0.1; then
    local wal
    wal=$(su postgres -c "psql -tAc 'show wal_level'")
    if [ "$wal" != logical ]; then
      log "restarting PostgreSQL $version for wal_level=logical"
      pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    else
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
  else
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  wait_for "PostgreSQL" pg_isready -h 127.0.0.1
  su postgres -c "psql -qc \"ALTER USER postgres WITH PASSWORD 'postgres'\""
  # Slots left behind by killed test runs pin WAL and use up max_replication_slots.
  su postgres -c "psql -qtAc \"SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE NOT active AND slot_name LIKE 'connect_test%'\"" >/dev/null
  for db in $(su postgres -c "psql -qtAc \"SELECT datname FROM pg_database WHERE datname LIKE 'connect_test%'\""); do
    su postgres -c "psql -qc 'DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)'" >/dev/null || true
  done
  log "PostgreSQL ready on 127.0.0.1:5432 (wal_level=$(su postgres -c "psql -tAc 'show wal_level'"))"

  # A second cluster that tests may restart without disturbing the others.
  local disrupt=/etc/postgresql/$version/disrupt
  if [ ! -d "$disrupt" ]; then
    log "creating PostgreSQL cluster 'disrupt' on port 5433"
    pg_createcluster "$version" disrupt --port 5433 >/dev/null
  fi
  mkdir -p "$disrupt/conf.d"
  grep -q "^include_dir = 'conf.d'" "$disrupt/postgresql.conf" \
    || echo "include_dir = 'conf.d'" >> "$disrupt/postgresql.conf"
  sed 's/^listen_addresses.*/listen_addresses = '"'"'127.0.0.1'"'"'\nport = 5433/' "$conf_dir/conf.d/50-connect-cdc.conf" > "$disrupt/conf.d/50-connect-cdc.conf"
  grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32' "$disrupt/pg_hba.conf" \
    || echo "host all all 127.0.0.1/32 scram-sha-256" >> "$disrupt/pg_hba.conf"
  grep -qE '^host\s+replication\s+all\s+127\.0\.0\.1/32' "$disrupt/pg_hba.conf" \
    || echo "host replication all 127.0.0.1/32 scram-sha-256" >> "$disrupt/pg_hba.conf"
  if pg_isready -q -h 127.0.0.1 -p 5433; then
    if [ "$(su postgres -c "psql -p 5433 -tAc 'show wal_level'")" != logical ]; then
      pg_ctlcluster --skip-systemctl-redirect "$version" disrupt restart
    fi
  else
    pg_ctlcluster --skip-systemctl-redirect "$version" disrupt start || true
  fi
  wait_for "PostgreSQL 'disrupt'" pg_isready -h 127.0.0.1 -p 5433
  su postgres -c "psql -p 5433 -qc \"ALTER USER postgres WITH PASSWORD 'postgres'\""
  su postgres -c "psql -p 5433 -qtAc \"SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE NOT active AND slot_name LIKE 'connect_test%'\"" >/dev/null
  for db in $(su postgres -c "psql -p 5433 -qtAc \"SELECT datname FROM pg_database WHERE datname LIKE 'connect_test%'\""); do
    su postgres -c "psql -p 5433 -qc 'DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)'" >/dev/null || true
  done
  log "PostgreSQL 'disrupt' ready on 127.0.0.1:5433"
}

# ---------------------------------------------------------------- MariaDB
# root with an empty password over TCP (tests only), whatever the socket auth is; over
# TCP from 127.0.0.1 the server sees root@localhost. Arguments pick the server's socket.
mariadb_test_root() {
  mariadb "$@" -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
FLUSH PRIVILEGES;
SQL
}

setup_mariadb() {
  need_pkg mariadbd mariadb-server
  setup_tls_certs
  local cnf=/etc/mysql/connect-cdc.cnf
  mkdir -p /etc/mysql
  cat > "$cnf" <<'CONF'
# written by connect's scripts/services.sh
[mysqld]
bind-address = 127.0.0.1
port = 3306
log_bin = mariadb-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
server_id = 1
ssl_ca = /etc/mysql/connect-tls/ca.crt
ssl_cert = /etc/mysql/connect-tls/server.crt
ssl_key = /etc/mysql/connect-tls/server.key
CONF
  # The test certificates (setup_tls_certs), readable by the server's user.
  mkdir -p /etc/mysql/connect-tls
  cp "$TLS_DIR/ca.crt" "$TLS_DIR/server.crt" "$TLS_DIR/server.key" /etc/mysql/connect-tls/
  chown -R mysql:mysql /etc/mysql/connect-tls
  chmod 600 /etc/mysql/connect-tls/server.key
  touch /etc/mysql/my.cnf
  grep -q "^!include $cnf" /etc/mysql/my.cnf || echo "!include $cnf" >> /etc/mysql/my.cnf
  mkdir -p /run/mysqld /var/log/mysql
  chown mysql:mysql /run/mysqld /var/log/mysql
  local datadir=/var/lib/mysql
  if [ ! -d "$datadir/mysql" ]; then
    log "initialising MariaDB data directory"
    mariadb-install-db --user=mysql --datadir="$datadir" >/dev/null
  fi
  if mariadb-admin ping >/dev/null 2>&1; then
    local fmt
    fmt=$(mariadb -uroot -NBe "select concat(@@log_bin + 0, @@binlog_format, @@binlog_row_metadata, @@have_ssl)" 2>/dev/null || true)
    if [ "$fmt" != "1ROWFULLYES" ]; then
      log "restarting MariaDB for the ROW binlog and TLS"
      mariadb-admin shutdown
      wait_for "MariaDB to stop" bash -c '! mariadb-admin ping'
      start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid \
        --exec /usr/sbin/mariadbd -- --user=mysql --pid-file=/run/mysqld/mysqld.pid
    fi
  else
    log "starting MariaDB"
    start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid \
        --exec /usr/sbin/mariadbd -- --user=mysql --pid-file=/run/mysqld/mysqld.pid
  fi
  wait_for "MariaDB" mariadb-admin ping
  mariadb_test_root
  # A GTID resume makes the server read the binlog file holding the GTID from its start:
  # bulk loads (benchmarks, kill tests) must not leave one file of a gigabyte to read.
  # Small files, and each run of this script starts a new one and drops the old ones.
  mariadb -uroot -e "SET GLOBAL max_binlog_size = 67108864; FLUSH BINARY LOGS"
  current_binlog=$(mariadb -uroot -NBe "SHOW MASTER STATUS" | cut -f1)
  mariadb -uroot -e "PURGE BINARY LOGS TO '$current_binlog'"
  log "MariaDB ready on 127.0.0.1:3306 ($(mariadb -uroot -h127.0.0.1 -NBe 'select concat(@@version, " binlog=", @@binlog_format)'))"

  # A second server that tests may restart without disturbing the others.
  standalone_mariadb disrupt 3307
}

# standalone_mariadb <name> <port> [extra [mysqld] lines...]: a MariaDB of its own
# (datadir /var/lib/mysql-<name>, socket /run/mysqld/<name>.sock) with the same ROW binlog
# settings. Its options file stands alone (no /etc/mysql includes), so it never shares a
# socket or datadir with another.
standalone_mariadb() {
  local name=$1 port=$2; shift 2
  local cnf=/etc/mysql/connect-$name.cnf dir=/var/lib/mysql-$name
  {
    echo "# written by connect's scripts/services.sh; start: mariadbd --defaults-file=<this file>"
    echo "[mysqld]"
    echo "user = mysql"
    echo "datadir = $dir"
    echo "socket = /run/mysqld/$name.sock"
    echo "pid-file = /run/mysqld/$name.pid"
    echo "log-error = /var/log/mysql/$name.err"
    echo "bind-address = 127.0.0.1"
    echo "port = $port"
    echo "log_bin = mariadb-bin"
    echo "binlog_format = ROW"
    echo "binlog_row_image = FULL"
    echo "binlog_row_metadata = FULL"
    echo "server_id = 1"
    for line in "$@"; do echo "$line"; done
  } > "$cnf"
  if [ ! -d "$dir/mysql" ]; then
    log "initialising the '$name' MariaDB data directory"
    mariadb-install-db --defaults-file="$cnf" >/dev/null
  fi
  local ping=(mariadb-admin --socket="/run/mysqld/$name.sock" ping)
  if ! "${ping[@]}" >/dev/null 2>&1; then
    log "starting MariaDB '$name'"
    start-stop-daemon --start --oknodo --background --pidfile "/run/mysqld/$name.pid" \
      --exec /usr/sbin/mariadbd -- --defaults-file="$cnf"
  fi
  wait_for "MariaDB '$name'" "${ping[@]}"
  mariadb_test_root --socket="/run/mysqld/$name.sock"
  log "MariaDB '$name' ready on 127.0.0.1:$port"
}

# tansu (crates.io) is the only Kafka-protocol broker installable here; memory storage
# keeps the tests' topics in RAM until it restarts (../shared/SERVICES.md).
TANSU_VERSION=0.6.0
KAFKA_PORT=9092
setup_kafka() {
  local tansu
  tansu=$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")
  if ! "$tansu" --version 2>/dev/null | grep -qF "$TANSU_VERSION"; then
    need_pkg cc gcc
    need_pkg make make
    log "installing tansu $TANSU_VERSION from crates.io (about 11 minutes on 2 cores)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore --quiet
    tansu="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
  fi
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; then
    log "starting tansu on 127.0.0.1:$KAFKA_PORT"
    local url="tcp://127.0.0.1:$KAFKA_PORT"
    setsid nohup "$tansu" broker --listener-url "$url" --advertised-listener-url "$url" \
      --storage-engine memory://tansu/ >/var/log/connect-tansu.log 2>&1 < /dev/null &
  fi
  wait_for "tansu on port $KAFKA_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT"
  log "tansu ready on 127.0.0.1:$KAFKA_PORT"
}

case "${1:-tests}" in
  tests)
    setup_postgres
    setup_mariadb
    ;;
  kafka)
    setup_kafka
    ;;
  # The MySQL benchmark's server: Debezium's MySQL connector refuses MariaDB 10.11's own
  # version string, and runs when the server reports a MySQL 5.7 one
  # (../shared/bench/README.md).
  bench-mariadb)
    setup_mariadb
    standalone_mariadb bench 3308 "version = 5.7.19-MariaDB-10.11.19"
    ;;
  *)
    log "usage: services.sh [tests|kafka|bench-mariadb]"
    exit 2
    ;;
esac
