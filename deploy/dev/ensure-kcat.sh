#!/usr/bin/env bash
# Make sure Debian's kcat is installed: a test drives it with the client files `accord kafka up`
# writes, to show that standard tools use them unchanged.
set -euo pipefail

if command -v kcat >/dev/null; then
  echo "kcat: $(command -v kcat)"
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" kcat
echo "kcat: $(command -v kcat)"
