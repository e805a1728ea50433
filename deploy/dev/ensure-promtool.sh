#!/usr/bin/env bash
# Make sure Prometheus' own rule checker, promtool, is at $ACCORD_HOME/bin/promtool (default
# ~/.cache/accord/bin): the tests check the alert rules and the dashboard's queries with it.
# It comes out of Debian's prometheus package, unpacked, never installed: installing would
# add a Prometheus server and its service to the machine. Prints promtool's path.
set -euo pipefail

bin="${ACCORD_HOME:-$HOME/.cache/accord}/bin"
promtool="$bin/promtool"
if [[ -x "$promtool" ]] && "$promtool" --version >/dev/null 2>&1; then
  echo "promtool: $promtool"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
download() { (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); }
if ! download; then
  # No package lists yet (a fresh container): fetch them, as root or password-less sudo.
  if [[ "$(id -u)" -eq 0 ]]; then
    apt-get update -q >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n apt-get update -q >/dev/null
  else
    echo "promtool: 'apt-get download prometheus' failed, and this user cannot run" \
         "'apt-get update'; run it as root, then 'make promtool' again" >&2
    exit 1
  fi
  download
fi
deb="$(find "$work" -maxdepth 1 -name 'prometheus_*.deb' | head -n 1)"
if [[ -z "$deb" ]]; then
  echo "promtool: apt-get download prometheus left no package" >&2
  exit 1
fi
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$bin"
install -m 0755 "$work/root/usr/bin/promtool" "$promtool.tmp"
mv -f "$promtool.tmp" "$promtool"
"$promtool" --version >/dev/null
echo "promtool: $promtool"
