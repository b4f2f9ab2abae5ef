#!/usr/bin/env bash
# `npm test`: install what is missing, then lint, type-check, build and run every test against
# a real Temporal dev server and moto. Ends with one summary line: "N passed, N failed, N skipped".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh --chromium
set -a; . "${EC2_GPU_MIGRATION_CACHE:-$HOME/.cache/ec2-gpu-migration}/tools.env"; set +a
npx --no-install eslint src test scripts bench chaos
npx --no-install prettier --check --log-level warn .
npx --no-install tsc -p tsconfig.json --noEmit
npx --no-install tsc -p tsconfig.build.json
mkdir -p test-artifacts
results=test-artifacts/jest-results.json
rm -f "$results"
status=0
# --forceExit: a leaked handle must fail loudly in the summary, never hang CI.
# Two test files at a time: each Jest worker has its own Temporal namespace and each test its own
# moto account, and the tests mostly wait on timers and I/O (JEST_MAX_WORKERS changes it).
npx --no-install jest --ci --forceExit --maxWorkers="${JEST_MAX_WORKERS:-2}" --json --outputFile="$results" "$@" || status=$?
if [ -f "$results" ]; then
  node -e 'const r = require(process.argv[1]); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`)' "$root/$results"
else
  echo "0 passed, 1 failed (jest wrote no results)"
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
