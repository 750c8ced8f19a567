#!/usr/bin/env bash
# Start the services the tests use (PostgreSQL, Redis; MariaDB where it is installed) when they
# are not already running. Without MariaDB the MySQL source tests skip, saying why.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
mariadb_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; }
if command -v mariadbd >/dev/null 2>&1 && command -v mysqladmin >/dev/null 2>&1 && ! mariadb_up; then
  echo "starting MariaDB"
  if [ -x /etc/init.d/mariadb ]; then
    /etc/init.d/mariadb start || true
  else
    (mysqld_safe --bind-address=127.0.0.1 --port=3306 >/dev/null 2>&1 &)
  fi
  for _ in $(seq 30); do mariadb_up && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
redis-cli -h 127.0.0.1 -p 6379 ping
if command -v mysqladmin >/dev/null 2>&1; then
  mariadb_up && echo "MariaDB: up" || echo "MariaDB: down (the MySQL source tests will skip)"
fi
