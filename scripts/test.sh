#!/usr/bin/env bash
# Runs every test suite against real infrastructure: starts (or reuses) the
# local Kafka and Redis, then vitest. Ends with one summary line
# "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
export TRACEFEED_LOG_LEVEL="${TRACEFEED_LOG_LEVEL:-warn}"
mkdir -p .tracefeed

bash infra/up.sh >&2
# The notebook suite runs the example notebook with this interpreter.
TRACEFEED_PYTHON="$(bash scripts/python-env.sh)"
export TRACEFEED_PYTHON

report=.tracefeed/vitest-report.json
rm -f "$report"
set +e
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
rc=$?
set -e

if [[ -f "$report" ]]; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
    if (r.numTotalTests === 0) { console.error("no test ran"); process.exit(1); }
  ' "$report" || rc=1
else
  echo "tests: 0 passed, 1 failed (vitest wrote no report)"
  rc=1
fi
exit "$rc"
