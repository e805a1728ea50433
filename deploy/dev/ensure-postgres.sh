#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries (initdb, pg_ctl) are installed, from Debian's package.
# The tests then run their own throwaway cluster on a free port in a temporary directory
# (tests/postgres.py); nothing here starts or configures a system-wide server.
# Skipped when ACCORD_TEST_POSTGRES_URL points at a server that already exists.
set -euo pipefail

if [[ -n "${ACCORD_TEST_POSTGRES_URL:-}" ]]; then
  echo "postgres: using ACCORD_TEST_POSTGRES_URL"
  exit 0
fi

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bin="$(find_bin || true)"
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
  bash "$(dirname "$0")/apt-install.sh" postgresql
  bin="$(find_bin)"
fi
echo "postgres: server binaries in $bin"
