#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the Rust test suites (unit, integration over loopback HTTP
# with the mock provider, store tests on SQLite and PostgreSQL), and the official OpenAI Python SDK against a real
# gateway process, then the dashboard's tests (TypeScript typecheck, Vitest, and end-to-end in Debian's headless
# Chromium driven by playwright-core), then schemathesis fuzzing of the HTTP surface from its OpenAPI document
# (tests/fuzz/schemathesis.sh, under 3 minutes), a 5-minute soak with faults (bench/soak.sh), then the packaging
# checks (tests/install/run.sh: the installer on a fresh directory, systemd-analyze, Kubernetes schemas, actionlint, hadolint). Installs what it needs into the
# repository (.venv, web/node_modules, tests/install/.venv and node_modules) on first use; Node.js/npm,
# /usr/bin/chromium, nginx and systemd-analyze must be present, and promtool and prometheus for the metrics checks
# (.ci/run installs them).
#
# PostgreSQL: store tests also run against FREELLMAPI_TEST_POSTGRES_URL. If it is unset and a server answers on
# 127.0.0.1:5432, that server is used (database `postgres`, user `postgres`); otherwise a loud notice says PostgreSQL
# was not tested. Redis: the fleet tests start their own `redis-server` processes; without the binary they are
# skipped with a loud notice (or fail, with FREELLMAPI_REQUIRE_REDIS=1 as .ci/run sets).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ -z "${FREELLMAPI_TEST_POSTGRES_URL:-}" ]; then
  if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    export FREELLMAPI_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    echo "!!!! NOTICE: no PostgreSQL on 127.0.0.1:5432 and FREELLMAPI_TEST_POSTGRES_URL unset: PostgreSQL will NOT be tested !!!!"
  fi
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "!!!! NOTICE: redis-server is not installed: the fleet tests (shared limits across instances) will NOT run !!!!"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "Rust tests (cargo nextest, or cargo test when nextest is absent)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

step "Build the gateway, the mock provider and the load generator for the SDK tests and the soak"
cargo build --quiet -p freellmapi -p mock-provider -p bench-load

step "OpenAI Python SDK against the gateway"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import openai" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "openai>=1.40,<4"
fi
.venv/bin/python tests/sdk/test_openai_sdk.py

step "Agent SDKs against the gateway: openai Responses API, anthropic Messages API, google-genai Gemini API"
if ! .venv/bin/python -c "import anthropic, google.genai, prometheus_client" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "anthropic>=0.40,<1" "google-genai>=1.0,<4" \
    "prometheus_client>=0.20,<1"
fi
.venv/bin/python tests/sdk/test_agent_sdks.py

step "Real coding agents through the gateway: Codex CLI (codex exec), Claude Code (claude -p), Gemini CLI (gemini -p), from npm"
bash tests/agents/run.sh

step "Soak: 5 minutes of mixed traffic with faults, RSS, descriptors and in-flight requests watched (bench/soak.sh)"
bash bench/soak.sh --debug --no-build --duration 300 --sample 10

step "Dashboard: typecheck, unit tests, production build, end-to-end in headless Chromium"
bash web/scripts/test.sh

step "Schema-driven fuzzing of /api and /v1 from the OpenAPI document (schemathesis, bounded in time)"
bash tests/fuzz/schemathesis.sh

step "Packaging: install.sh --native --yes in a fresh directory, systemd unit, Kubernetes manifests, workflows, Dockerfile"
bash tests/install/run.sh "${CARGO_TARGET_DIR:-target}/debug/freellmapi"

step "All tests passed"
