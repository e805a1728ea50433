#!/usr/bin/env bash
# Make sure Debian's Maven is installed: it copies Apache Kafka's jars out of Maven Central
# into Accord's cache the first time (`make kafka-jars`, which skips this when they are cached).
set -euo pipefail

if command -v mvn >/dev/null; then
  echo "maven: $(command -v mvn)"
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" maven
echo "maven: $(command -v mvn)"
