#!/usr/bin/env bash
# Installs what the tests need, then builds and runs every test.
#
# - the Rust target wasm32-wasip2, and the guest policies in guest-policies/
#   built for it (the host's tests load them) and tested natively;
# - Debian's chromium and chromium-driver (apt-get, when missing);
# - the Codex CLI and Claude Code, pinned, from the npm registry, into a cache
#   folder outside the checkout (reused when already there), passed to the
#   tests as CODEX_BIN and CLAUDE_BIN;
# - then `cargo test` for the whole workspace (unit tests and end-to-end tests),
#   and the official MCP conformance suite against `serve --http` (scripts/conformance.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CODEX_VERSION=0.169.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/codex-jobhost"
codex_dir="$cache/codex-$CODEX_VERSION"
codex_js="$codex_dir/node_modules/@openai/codex/bin/codex.js"

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node.js 18+ first" >&2; exit 1; }

# npm_pinned PACKAGE VERSION DIR: installs PACKAGE@VERSION into DIR unless it is there.
npm_pinned() {
  if ! grep -qs "\"version\": \"$2\"" "$3/node_modules/$1/package.json"; then
    echo "==> installing $1@$2 into $3"
    mkdir -p "$3"
    npm install --no-save --no-audit --no-fund --prefix "$3" "$1@$2"
  fi
}

npm_pinned @openai/codex "$CODEX_VERSION" "$codex_dir"
export CODEX_BIN="$codex_js"
echo "==> $("$CODEX_BIN" --version) at $CODEX_BIN"

# Claude Code, pinned, for the test of the README's registration with it.
CLAUDE_VERSION=2.1.330
claude_dir="$cache/claude-code-$CLAUDE_VERSION"
npm_pinned @anthropic-ai/claude-code "$CLAUDE_VERSION" "$claude_dir"
export CLAUDE_BIN="$claude_dir/node_modules/.bin/claude"
echo "==> $("$CLAUDE_BIN" --version) at $CLAUDE_BIN"

# Debian's Chromium and ChromeDriver, for the test of the page at `/` in a real browser.
if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium and chromium-driver (Debian packages)"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q chromium chromium-driver
fi
echo "==> $(/usr/bin/chromedriver --version)"

echo "==> guest policies (wasm32-wasip2)"
rustup target add wasm32-wasip2
# From inside the folder, so its .cargo/config.toml (wasm SIMD) applies.
(cd guest-policies && cargo build --locked --release --target wasm32-wasip2 && cargo test --locked)

# With fail points compiled in: the crash tests stop the binary at named
# points (FAILPOINTS=<name>=return); a release build has none.
echo "==> cargo build"
cargo build --workspace --locked --all-targets --features codex-jobhost/failpoints
echo "==> cargo test"
cargo test --workspace --locked --features codex-jobhost/failpoints
# The default backend is app-server; the job and crash tests run on exec too.
echo "==> cargo test: jobs and durability on the exec backend"
CODEX_JOBHOST_E2E_BACKEND=exec cargo test --workspace --locked --features codex-jobhost/failpoints --test jobs --test durability
# The official MCP conformance suite against `serve --http` (Node 22, pinned, in the cache).
echo "==> MCP conformance suite"
./scripts/conformance.sh target/debug/codex-jobhost
