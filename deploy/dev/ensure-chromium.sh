#!/usr/bin/env bash
# Make sure Debian's Chromium is installed: the governance console's browser tests drive it
# with Playwright (executable_path), because Playwright's own browser download needs the
# internet. Skipped when ACCORD_CHROMIUM names a Chromium binary that exists.
set -euo pipefail

if [[ -n "${ACCORD_CHROMIUM:-}" && -x "${ACCORD_CHROMIUM}" ]]; then
  echo "chromium: using ACCORD_CHROMIUM=${ACCORD_CHROMIUM}"
  exit 0
fi
if command -v chromium >/dev/null; then
  echo "chromium: $(command -v chromium)"
  exit 0
fi
if [[ "$(id -u)" -eq 0 ]]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "chromium: Chromium is not installed and this user cannot install it;" \
       "run 'apt-get install -y chromium' as root, or set ACCORD_CHROMIUM" >&2
  exit 1
fi
echo "chromium: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q chromium >/dev/null 2>&1; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q chromium >/dev/null
fi
echo "chromium: $(command -v chromium)"
