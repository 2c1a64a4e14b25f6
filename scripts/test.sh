#!/usr/bin/env bash
# Runs every check: typecheck and lint first (so they cannot rot), then every
# test suite against real infrastructure: starts (or reuses) the local Kafka and
# Redis, then vitest. Ends with one summary line "tests: N passed, N failed, N skipped".
# Arguments are passed to vitest (a file or a name filter); with arguments the
# typecheck and lint are skipped (TRACEFEED_CHECKS=1 forces them).
set -euo pipefail
cd "$(dirname "$0")/.."
export TRACEFEED_LOG_LEVEL="${TRACEFEED_LOG_LEVEL:-warn}"
mkdir -p .tracefeed

if [[ $# -eq 0 || ${TRACEFEED_CHECKS:-0} == 1 ]]; then
  echo "checks: typecheck" >&2
  npx tsc -p tsconfig.json --noEmit
  echo "checks: lint" >&2
  npm run -s lint
fi

# Tests run roles against scratch topics of their own (tracefeed.test.*): infra/kafka/acls.mjs.
export TRACEFEED_KAFKA_TEST_TOPICS=1
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
