#!/usr/bin/env bash
# Stop tracefeed's local Kafka and Redis (idempotent). Pass --kill for an immediate SIGKILL.
# Both are attempted even if one fails; exit 1 if either failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rc=0
bash "$here/kafka.sh" stop "$@" || rc=1
bash "$here/redis.sh" stop "$@" || rc=1
exit "$rc"
