#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance,
# pinned) against `codex-jobhost serve --http --no-auth` on loopback: every
# server scenario (`--suite all`: both protocol eras and the tasks extension),
# with the checks that cannot apply to this server named, each with its
# reason, in tests/conformance/expected-failures.yml. The suite needs Node 22
# or newer (it imports fs.globSync); the npm package node@22 brings one into
# the same folder.
#
# Usage: scripts/conformance.sh [codex-jobhost binary]   (default: target/debug/codex-jobhost)
set -euo pipefail
cd "$(dirname "$0")/.."

CONFORMANCE_VERSION=0.2.0-alpha.12
NODE_VERSION=22.23.3
cache="${XDG_CACHE_HOME:-$HOME/.cache}/codex-jobhost"
dir="$cache/conformance-$CONFORMANCE_VERSION-node-$NODE_VERSION"
bin="${1:-target/debug/codex-jobhost}"

if ! grep -qs "\"version\": \"$CONFORMANCE_VERSION\"" "$dir/node_modules/@modelcontextprotocol/conformance/package.json"; then
  echo "==> installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION and node@$NODE_VERSION into $dir"
  mkdir -p "$dir"
  npm install --no-save --no-audit --no-fund --prefix "$dir" \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" "node@$NODE_VERSION"
fi
export PATH="$dir/node_modules/.bin:$PATH"
echo "==> $(node --version) for the conformance suite"

work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
CODEX_JOBHOST_HOME="$work/home" "$bin" serve --http 127.0.0.1:0 --no-auth 2> "$work/server.log" &
server=$!
for _ in $(seq 600); do
  url="$(sed -n 's/.*serving MCP at \(http[^ ]*\).*/\1/p' "$work/server.log")"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the server printed no URL" >&2; cat "$work/server.log" >&2; exit 1; }
echo "==> conformance suite against $url"
conformance server --url "$url" --suite all --expected-failures tests/conformance/expected-failures.yml \
  -o "$work/results"
