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
chaos_results=test-artifacts/jest-chaos-results.json
rm -f "$results" "$chaos_results"
status=0
chaos_pid=
if [ "$#" -eq 0 ]; then
  # The short chaos set mostly waits on timers, boots and outages: it runs in a Jest process of
  # its own, beside the others, instead of holding one of their two workers for minutes.
  npx --no-install jest --ci --forceExit --selectProjects chaos --json --outputFile="$chaos_results" \
    > test-artifacts/chaos-set.log 2>&1 &
  chaos_pid=$!
  set -- --selectProjects unit workflow integration
fi
# --forceExit: a leaked handle must fail loudly in the summary, never hang CI.
# Two test files at a time: each Jest worker has its own Temporal namespace and each test its own
# moto account, and the tests mostly wait on timers and I/O (JEST_MAX_WORKERS changes it).
npx --no-install jest --ci --forceExit --maxWorkers="${JEST_MAX_WORKERS:-2}" --json --outputFile="$results" "$@" || status=$?
if [ -n "$chaos_pid" ]; then
  chaos_status=0
  wait "$chaos_pid" || chaos_status=$?
  echo "--- the short chaos set (test-artifacts/chaos-set.log):"
  tail -n 60 test-artifacts/chaos-set.log
  [ "$chaos_status" -eq 0 ] || status=$chaos_status
fi
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0, missing = 0;
  for (const file of process.argv.slice(1).filter(Boolean)) {
    if (!fs.existsSync(file)) { missing++; continue; }
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests;
  }
  if (missing) { failed += missing; console.error(`${missing} Jest run(s) wrote no results`); }
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(missing ? 1 : 0);
' "$root/$results" "${chaos_pid:+$root/$chaos_results}" || [ "$status" -ne 0 ] || status=1
exit "$status"
