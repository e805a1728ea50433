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
bash "$(dirname "$0")/apt-install.sh" chromium
echo "chromium: $(command -v chromium)"
