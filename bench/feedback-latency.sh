#!/usr/bin/env bash
# Runs bench/feedback-latency.ts (no tsx in the project): compiles the
# TypeScript with the project's tsc into a temp dir that links back to the
# repository's bpf/, native/ and node_modules/, then runs it with node.
# usage: bash bench/feedback-latency.sh [iterations]   (root; Kafka and Redis up)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/tracefeed-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
npx tsc -p tsconfig.json --outDir "$out" --noEmit false --declaration false --sourceMap false
for d in bpf native node_modules package.json; do ln -s "$PWD/$d" "$out/$d"; done
TRACEFEED_HOME="${TRACEFEED_HOME:-$PWD/.tracefeed}" node "$out/bench/feedback-latency.js" "$@"
