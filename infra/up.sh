#!/usr/bin/env bash
# Start (or reuse) tracefeed's local Redis and Kafka. Exit 0 when both are ready.
# usage: infra/up.sh [--brokers N]   N Kafka nodes (default: TRACEFEED_KAFKA_BROKER_COUNT,
#                                    else the cluster last started here, else 1)
# Env: see infra/redis.sh and infra/kafka.sh (TRACEFEED_HOME, TRACEFEED_*_PORT, ...).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/redis.sh" start
bash "$here/kafka.sh" start "$@"
