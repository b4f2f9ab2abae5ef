#!/usr/bin/env bash
# `npm test`: install what is missing, then lint, type-check, build and run every test against
# a real Temporal dev server and moto.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh --chromium
set -a; . "${EC2_GPU_MIGRATION_CACHE:-$HOME/.cache/ec2-gpu-migration}/tools.env"; set +a
npx --no-install eslint src test scripts
npx --no-install tsc -p tsconfig.json --noEmit
npx --no-install tsc -p tsconfig.build.json
npx --no-install jest --ci "$@"
