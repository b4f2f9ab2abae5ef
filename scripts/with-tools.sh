#!/usr/bin/env bash
# Runs a command with the tools the bootstrap installed: its Node (24 LTS where the machine's is
# older than 22) first on PATH, and the paths of the temporal CLI, the test server and moto.
#   bash scripts/with-tools.sh tsx scripts/demo.ts
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/bootstrap.sh"
set -a
# shellcheck disable=SC1091
. "${EC2_GPU_MIGRATION_CACHE:-$HOME/.cache/ec2-gpu-migration}/tools.env"
set +a
exec "$@"
