#!/usr/bin/env bash
# Start (or reuse) tracefeed's local Redis and Kafka. Exit 0 when both are ready.
# Env: see infra/redis.sh and infra/kafka.sh (TRACEFEED_HOME, TRACEFEED_*_PORT, ...).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/redis.sh" start
bash "$here/kafka.sh" start
