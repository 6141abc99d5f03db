#!/usr/bin/env bash
# End-to-end test of the dashboard: builds the gateway and the mock provider (debug), builds the dashboard if needed,
# then runs e2e/run.mjs, which starts both servers on free ports, drives headless Chromium and always stops them.
# Screenshots and logs go to web/e2e/out/ (git-ignored).
set -euo pipefail
WEB="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$WEB/.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "e2e: /usr/bin/chromium is missing; install it with: apt-get install -y chromium" >&2
  exit 2
fi

# Cargo only rebuilds what changed. If another build holds the lock, cargo waits for it.
# Binaries are taken from $CARGO_TARGET_DIR/debug when that is set, else target/debug.
# E2E_SKIP_BUILD=1 uses the binaries already in target/debug (e.g. while the tree does not compile).
if [ "${E2E_SKIP_BUILD:-0}" = 1 ]; then
  for bin in freellmapi mock-provider; do
    [ -x "${CARGO_TARGET_DIR:-$ROOT/target}/debug/$bin" ] || { echo "e2e: target/debug/$bin is missing (E2E_SKIP_BUILD=1)" >&2; exit 2; }
  done
  echo "e2e: E2E_SKIP_BUILD=1: using the existing debug binaries" >&2
else
  (cd "$ROOT" && cargo build -p freellmapi -p mock-provider)
fi

if [ ! -f "$WEB/dist/index.html" ] || [ "${E2E_BUILD:-0}" = 1 ]; then
  (cd "$WEB" && npm run build)
fi

cd "$WEB"
exec node e2e/run.mjs "$@"
