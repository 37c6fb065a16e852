#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL on 127.0.0.1, then stop it.
#   scripts/with-postgres.sh .venv/bin/python -m pytest -m store
# Installs Debian's postgresql if it is missing; the command sees BREWSLM_TEST_DATABASE_URL.
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

PGBIN=$(pg_bin)
if [ -z "$PGBIN" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q postgresql >/dev/null
  PGBIN=$(pg_bin)
fi

DATA=$(mktemp -d /tmp/brewslm-pg.XXXXXX)
AS=()
if [ "$(id -u)" -eq 0 ]; then   # initdb refuses to run as root
  chown postgres "$DATA"
  AS=(runuser -u postgres --)
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"${AS[@]}" "$PGBIN/initdb" -D "$DATA/db" -U brewslm --auth=trust -E UTF8 >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$DATA/db" -l "$DATA/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA" start >/dev/null
stop() { "${AS[@]}" "$PGBIN/pg_ctl" -D "$DATA/db" -m fast -w stop >/dev/null || true; rm -rf "$DATA"; }
trap stop EXIT
"${AS[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U brewslm brewslm_test

echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
export BREWSLM_TEST_DATABASE_URL="postgresql+psycopg://brewslm@127.0.0.1:$PORT/brewslm_test"
"$@"
