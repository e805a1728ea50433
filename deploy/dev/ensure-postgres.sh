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
  if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "postgres: PostgreSQL is not installed and this user cannot install it;" \
         "run 'apt-get install -y postgresql' as root, or set ACCORD_TEST_POSTGRES_URL" >&2
    exit 1
  fi
  echo "postgres: installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -q postgresql >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q postgresql >/dev/null
  fi
  bin="$(find_bin)"
fi
echo "postgres: server binaries in $bin"
