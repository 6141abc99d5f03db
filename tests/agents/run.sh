#!/usr/bin/env bash
# The real coding agents against a real gateway over a scripted mock upstream: Codex CLI (`codex exec`, OpenAI
# Responses API), Claude Code (`claude -p`, Anthropic Messages API) and Gemini CLI (`gemini -p`, Gemini API) each get
# a task that needs one tool call —
# write a given text to a given file — and the test checks the file on disk. The gateway's first key for the model
# stalls after its first (role) chunk, so every agent request also proves failover before the commit point on these
# surfaces: the gateway must record `attempts: 2` for them.
#
# The agents are installed from npm into tests/agents/node_modules (pinned versions, first run only). Everything
# runs on 127.0.0.1; telemetry and update checks are turned off; each agent is bounded by a timeout.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/${FREELLMAPI_TEST_PROFILE:-debug}"
CODEX_VERSION=0.171.0
CLAUDE_VERSION=2.1.332
GEMINI_VERSION=0.61.0

if [ ! -x node_modules/.bin/codex ] || [ ! -x node_modules/.bin/claude ] || [ ! -x node_modules/.bin/gemini ] \
  || ! grep -q "\"version\": \"$CODEX_VERSION\"" node_modules/@openai/codex/package.json 2>/dev/null \
  || ! grep -q "\"version\": \"$CLAUDE_VERSION\"" node_modules/@anthropic-ai/claude-code/package.json 2>/dev/null \
  || ! grep -q "\"version\": \"$GEMINI_VERSION\"" node_modules/@google/gemini-cli/package.json 2>/dev/null; then
  npm install --no-audit --no-fund --no-save --silent "@openai/codex@$CODEX_VERSION" \
    "@anthropic-ai/claude-code@$CLAUDE_VERSION" "@google/gemini-cli@$GEMINI_VERSION"
fi

W=$(mktemp -d)
cleanup() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
  [ -n "${MOCK_PID:-}" ] && kill "$MOCK_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

wait_for_line() { # file pattern seconds
  for _ in $(seq 1 $(($3 * 10))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

"$BIN/mock-provider" --listen 127.0.0.1:0 >"$W/mock.log" 2>&1 &
MOCK_PID=$!
wait_for_line "$W/mock.log" "listening on" 10
MOCK=$(grep -o 'http://[0-9.:]*' "$W/mock.log" | head -1)

KEY="freellmapi-agents-test-0123456789abcdef012345"
cat >"$W/gateway.toml" <<TOML
# The first key stalls after its role chunk: the gateway must fail over to the second, invisibly.
[[provider_keys]]
name = "stalling"
platform = "custom"
base_url = "$MOCK/stall+agent/v1"
models = ["agent-model"]

[[provider_keys]]
name = "scripted"
platform = "custom"
base_url = "$MOCK/agent/v1"
models = ["agent-model"]

[[gateway_keys]]
name = "agents"
key = "$KEY"
TOML
# One gateway per agent: the stalling key cools down after its first failure, so each agent starts afresh.
start_gateway() { # name
  [ -n "${GW_PID:-}" ] && { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; }
  LOG="$W/gateway-$1.log"
  PORT=0 DATA_DIR="$W/data-$1" FREELLMAPI_CONFIG="$W/gateway.toml" ADMIN_PASSWORD=agents-test-password \
    LOG_FORMAT=json PROXY_RATE_LIMIT_RPM=0 STREAM_FIRST_TOKEN_STALL_MS=500 \
    "$BIN/freellmapi" serve >"$LOG" 2>&1 &
  GW_PID=$!
  wait_for_line "$LOG" '"address"' 30
  GW="http://$(grep -o '"address":"[^"]*"' "$LOG" | head -1 | cut -d'"' -f4)"
}

fail() {
  echo "FAIL: $*" >&2
  echo "--- gateway log (last 40 lines)" >&2
  tail -40 "$LOG" >&2
  exit 1
}

check_requests() { # endpoint agent
  local rows
  sleep 0.5 # the log-flush thread writes every 100 ms
  rows=$(grep '"message":"request finished"' "$LOG" | grep "\"endpoint\":\"$1\"" || true)
  [ -n "$rows" ] || fail "$2 sent no $1 request through the gateway"
  if echo "$rows" | grep -v '"status":"success"' | grep -q .; then
    fail "$2: a $1 request did not succeed: $(echo "$rows" | grep -v '"status":"success"' | head -1)"
  fi
  echo "$rows" | grep -q '"attempts":2' || fail "$2: no $1 request failed over from the stalling key"
  echo "    $2: $(echo "$rows" | wc -l) $1 requests, all answered, failover from the stalling key seen"
}

start_gateway codex

# --- Codex CLI over /v1/responses --------------------------------------------------------------------------------
mkdir -p "$W/codex-home" "$W/codex-work"
cat >"$W/codex-home/config.toml" <<TOML
model = "agent-model"
model_provider = "freellmapi"

[model_providers.freellmapi]
name = "FreeLLMAPI"
base_url = "$GW/v1"
env_key = "FREELLMAPI_KEY"
wire_api = "responses"
TOML
(
  cd "$W/codex-work"
  CODEX_HOME="$W/codex-home" FREELLMAPI_KEY="$KEY" timeout 180 "$OLDPWD/node_modules/.bin/codex" exec \
    --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox \
    "Write the file as asked. <<path:$W/codex-work/hello.txt>> <<content:hello from codex>>" \
    </dev/null >"$W/codex.out" 2>&1
) || { cat "$W/codex.out" >&2; fail "codex exec exited with an error"; }
[ "$(cat "$W/codex-work/hello.txt" 2>/dev/null)" = "hello from codex" ] \
  || { cat "$W/codex.out" >&2; fail "Codex did not write the file"; }
grep -q "Done: the file is written." "$W/codex.out" || fail "Codex did not print the final answer"
echo "    codex exec wrote the file"
check_requests responses "codex"

# --- Claude Code over /v1/messages (its default Claude model name is mapped to `auto`) ---------------------------
start_gateway claude
mkdir -p "$W/claude-home" "$W/claude-work"
(
  cd "$W/claude-work"
  HOME="$W/claude-home" ANTHROPIC_BASE_URL="$GW" ANTHROPIC_AUTH_TOKEN="$KEY" DISABLE_TELEMETRY=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
    timeout 180 "$OLDPWD/node_modules/.bin/claude" -p \
    "Write the file as asked. <<path:$W/claude-work/hello.txt>> <<content:hello from claude>>" \
    --permission-mode acceptEdits --allowedTools "Write Bash" </dev/null >"$W/claude.out" 2>&1
) || { cat "$W/claude.out" >&2; fail "claude -p exited with an error"; }
[ "$(cat "$W/claude-work/hello.txt" 2>/dev/null)" = "hello from claude" ] \
  || { cat "$W/claude.out" >&2; fail "Claude Code did not write the file"; }
grep -q "Done: the file is written." "$W/claude.out" || fail "Claude Code did not print the final answer"
echo "    claude -p wrote the file"
check_requests messages "claude"

# --- Gemini CLI over /v1beta/models/{model}:streamGenerateContent (its Gemini model name is mapped to `auto`) -----
# `-m` names the model, so Gemini CLI skips its model-routing classifier call (a JSON-schema request the scripted
# upstream has no answer for).
start_gateway gemini
mkdir -p "$W/gemini-home/.gemini" "$W/gemini-work"
cat >"$W/gemini-home/.gemini/settings.json" <<JSON
{
  "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
  "privacy": {"usageStatisticsEnabled": false},
  "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
  "telemetry": {"enabled": false}
}
JSON
(
  cd "$W/gemini-work"
  HOME="$W/gemini-home" GOOGLE_GEMINI_BASE_URL="$GW" GEMINI_API_KEY="$KEY" GEMINI_CLI_NO_RELAUNCH=1 \
    timeout 180 "$OLDPWD/node_modules/.bin/gemini" -m gemini-2.5-flash --yolo \
    -p "Write the file as asked. <<path:$W/gemini-work/hello.txt>> <<content:hello from gemini>>" \
    </dev/null >"$W/gemini.out" 2>&1
) || { cat "$W/gemini.out" >&2; fail "gemini -p exited with an error"; }
[ "$(cat "$W/gemini-work/hello.txt" 2>/dev/null)" = "hello from gemini" ] \
  || { cat "$W/gemini.out" >&2; fail "Gemini CLI did not write the file"; }
grep -q "Done: the file is written." "$W/gemini.out" || fail "Gemini CLI did not print the final answer"
echo "    gemini -p wrote the file"
check_requests gemini "gemini"

echo "agents: Codex CLI $CODEX_VERSION, Claude Code $CLAUDE_VERSION and Gemini CLI $GEMINI_VERSION completed their tasks through the gateway"
