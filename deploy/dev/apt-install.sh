#!/usr/bin/env bash
# apt-install.sh PACKAGE: install one of Debian's packages for the tests, as root or through
# password-less sudo; otherwise say what to run and fail. Used by the ensure-*.sh scripts.
set -euo pipefail
package="$1"
if [[ "$(id -u)" -eq 0 ]]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "$package: not installed, and this user cannot install it;" \
       "run 'apt-get install -y $package' as root" >&2
  exit 1
fi
echo "$package: installing Debian's $package package"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q "$package" >/dev/null 2>&1; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q "$package" >/dev/null
fi
