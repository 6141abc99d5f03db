#!/usr/bin/env bash
# The dashboard's full test: install, typecheck, unit tests, production build, end-to-end run.
set -euo pipefail
WEB="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$WEB"
# `npm install`, not `npm ci`: this machine's npm writes lock files that its own `npm ci` refuses.
npm install --no-audit --no-fund
npx tsc --noEmit
npx vitest run
npm run build
bash scripts/e2e.sh
