#!/usr/bin/env bash
# scripts/demo.sh — see dbsync work in one command.
#
# Starts a throwaway MariaDB (binary logging on, ROW format) in a temporary
# directory, the producer with its embedded NATS/JetStream broker, and the
# consumer command; then runs a small workload (inserts, updates, deletes) and
# shows every change arriving as a JSON line. Everything is stopped and removed
# on exit (Ctrl-C too). Ports: DEMO_MYSQL_PORT (default 13306) and
# DEMO_NATS_PORT (default 14222) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/servers.sh
. scripts/servers.sh
ensure_servers scripts/demo.sh

mysql_port="${DEMO_MYSQL_PORT:-13306}"
nats_port="${DEMO_NATS_PORT:-14222}"
work="$(mktemp -d /tmp/dbsync-demo.XXXXXX)"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

sbin() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

for port in "$mysql_port" "$nats_port"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "scripts/demo.sh: port $port is in use; set DEMO_MYSQL_PORT / DEMO_NATS_PORT" >&2
		exit 1
	fi
done

say "building producer and consumer"
go build -o "$work/bin/" ./cmd/producer ./cmd/consumer

say "starting a throwaway MariaDB on 127.0.0.1:$mysql_port (binlog ROW, row metadata FULL)"
user_args=()
[ "$(id -u)" -eq 0 ] && user_args=(--user=root)
"$(sbin mariadb-install-db)" --no-defaults "${user_args[@]}" --datadir="$work/mysql" \
	--auth-root-authentication-method=normal >"$work/install-db.log" 2>&1
"$(sbin mariadbd)" --no-defaults "${user_args[@]}" --datadir="$work/mysql" --socket="$work/mysql.sock" \
	--bind-address=127.0.0.1 --port="$mysql_port" --log-bin=mysql-bin --binlog-format=ROW \
	--binlog-row-metadata=FULL --server-id=1 --skip-name-resolve --innodb-buffer-pool-size=64M \
	--log-error="$work/mariadb.err" >"$work/mariadbd.out" 2>&1 &
pids+=($!)
sql() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$mysql_port" "$@"; }
for _ in $(seq 100); do sql -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
sql -e "SELECT 1" >/dev/null || { echo "MariaDB did not start:"; tail "$work/mariadb.err"; exit 1; }
sql -e "CREATE USER dbsync@'%' IDENTIFIED BY 'demo-pw-7c2';
	GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO dbsync@'%';
	CREATE DATABASE shop;
	CREATE TABLE shop.orders (id INT PRIMARY KEY, customer VARCHAR(40), total DECIMAL(10,2), status ENUM('new','paid','shipped'), updated_at DATETIME(6));"

cat >"$work/config.json" <<JSON
{
  "DataDir": "$work/producer",
  "Mysql": {"Host": "127.0.0.1", "Port": "$mysql_port", "Username": "dbsync", "Password": "demo-pw-7c2"},
  "MQName": "jetstream",
  "JetStream": {"Listen": "127.0.0.1:$nats_port"},
  "Log": {"Level": "info"},
  "HTTP": {"Listen": "127.0.0.1:0"}
}
JSON

say "starting the producer (embedded NATS with JetStream on 127.0.0.1:$nats_port)"
"$work/bin/producer" -config "$work/config.json" 2>"$work/producer.log" &
pids+=($!)
for _ in $(seq 150); do grep -q "binlog stream started" "$work/producer.log" 2>/dev/null && break; sleep 0.2; done
grep -q "binlog stream started" "$work/producer.log" || { echo "the producer did not start:"; cat "$work/producer.log"; exit 1; }
grep -iE "embedded|no checkpoint" "$work/producer.log" | sed 's/^/  producer: /'

say "starting the consumer: every change of shop.orders, one JSON line each"
"$work/bin/consumer" -broker jetstream -url "nats://127.0.0.1:$nats_port" -client demo shop.orders 2>"$work/consumer.log" &
pids+=($!)
sleep 1

say "workload: 5 inserts, 3 updates, 1 delete"
for i in 1 2 3 4 5; do
	sql -e "INSERT INTO shop.orders VALUES ($i, 'customer $i', $i * 10.25, 'new', NOW(6))"
	sleep 0.3
done
sql -e "UPDATE shop.orders SET status='paid', updated_at=NOW(6) WHERE id IN (1, 2)"
sleep 0.3
sql -e "UPDATE shop.orders SET status='shipped', updated_at=NOW(6) WHERE id = 1"
sleep 0.3
sql -e "DELETE FROM shop.orders WHERE id = 5"
sleep 2

say "done: 9 changes streamed; stopping everything"
