#!/usr/bin/env bash
# One line per service. Exit 0 if all are running, 1 if any is running but not answering,
# otherwise 3 (at least one stopped).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rc=0
for svc in kafka redis; do
  bash "$here/$svc.sh" status
  r=$?
  if ((r == 1)) || ((r != 0 && rc == 0)); then
    rc=$r
  fi
done
exit "$rc"
