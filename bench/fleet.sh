#!/usr/bin/env bash
# bench/fleet.sh: a fleet of rate-limited mock keys, driven at a fixed offered rate below the fleet's capacity,
# through the gateway's router (twice: with the keys' limits declared, and without) and through a naive
# client-side round-robin over the same keys. Writes a report section for bench/RESULTS.md.
#
# Everything listens on 127.0.0.1, every process is started by this script and killed on exit, and every phase
# stops by itself. See bench/README.md ("Fleet simulation").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="$ROOT/bench/out"

DURATION=180
LOAD_PERCENT=80
RR_TRIES=3
ATTEMPT_TIMEOUT_S=10
SYSTEMS="router-limits,router-learn,router-429,round-robin"
KEEP_TMP=0
BUILD=1

GATEWAY_KEY="freellmapi-fleet-0123456789abcdef0123456789abcdef"
ADMIN_PASSWORD="fleet-password-123"
MODEL="fleet-model"
BODY="{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}],\"max_tokens\":16}"

usage() {
    cat <<EOF
usage: bench/fleet.sh [--duration SECS] [--load-percent P] [--systems LIST] [--rr-tries N]
                      [--attempt-timeout SECS] [--keep-tmp] [--no-build]

  --duration         seconds of offered load per system (default 180)
  --load-percent     offered rate as a percentage of the healthy keys' summed RPM (default 80)
  --systems          comma-separated subset of router-limits,router-learn,router-429,round-robin
                     (default: all)
  --rr-tries         attempts per request of the round-robin baseline (default 3)
  --attempt-timeout  seconds before one upstream attempt is abandoned, for the gateway
                     (PROVIDER_TIMEOUT_MS) and the baseline alike (default 10)
  --keep-tmp         keep the temp dir (configs, logs, gateway data)
  --no-build         use the existing release binaries

Binaries come from \${CARGO_TARGET_DIR:-target}/release. Writes bench/out/fleet-<timestamp>.md
(+ raw fleet-<timestamp>.jsonl) and prints the report on stdout; progress goes to stderr.
EOF
}

die() { echo "fleet.sh: $*" >&2; exit 1; }
log() { echo "[fleet] $*" >&2; }

ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        --load-percent) LOAD_PERCENT=${2:?--load-percent needs a value}; shift 2 ;;
        --load-percent=*) LOAD_PERCENT=${1#*=}; shift ;;
        --systems) SYSTEMS=${2:?--systems needs a value}; shift 2 ;;
        --systems=*) SYSTEMS=${1#*=}; shift ;;
        --rr-tries) RR_TRIES=${2:?--rr-tries needs a value}; shift 2 ;;
        --rr-tries=*) RR_TRIES=${1#*=}; shift ;;
        --attempt-timeout) ATTEMPT_TIMEOUT_S=${2:?--attempt-timeout needs a value}; shift 2 ;;
        --attempt-timeout=*) ATTEMPT_TIMEOUT_S=${1#*=}; shift ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 10 && "$DURATION" -le 1800 ]] || die "--duration must be an integer in 10..1800"
[[ "$LOAD_PERCENT" =~ ^[0-9]+$ && "$LOAD_PERCENT" -ge 1 && "$LOAD_PERCENT" -le 300 ]] || die "--load-percent must be in 1..300"
[[ "$RR_TRIES" =~ ^[0-9]+$ && "$RR_TRIES" -ge 1 && "$RR_TRIES" -le 100 ]] || die "--rr-tries must be in 1..100"
[[ "$ATTEMPT_TIMEOUT_S" =~ ^[0-9]+$ && "$ATTEMPT_TIMEOUT_S" -ge 1 && "$ATTEMPT_TIMEOUT_S" -le 300 ]] || die "--attempt-timeout must be in 1..300"
IFS=',' read -r -a SYSTEM_LIST <<<"$SYSTEMS"
[ "${#SYSTEM_LIST[@]}" -ge 1 ] || die "--systems is empty"
for s in "${SYSTEM_LIST[@]}"; do
    case "$s" in router-limits|router-learn|router-429|round-robin) ;; *) die "unknown system: $s" ;; esac
done
for tool in curl python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# ---------------------------------------------------------------- the fleet
# One mock key per line: "<rpm> <latency ms> <fault>". Mostly small free tiers, latencies 50-800 ms; two keys
# misbehave now and then (every third request a 500; every fourth request never answered). Tiers are interleaved so
# that neighbours in the list differ (the round-robin baseline walks the list in order). Each key's mock scenario is
# `id<n>+rpm<rpm>+slow<ms>[+fault]`, so every key has its own window and counters.
FLEET=(
    "5 50 -"    "10 150 -"  "5 100 -"   "15 100 -"  "5 150 -"   "20 50 -"   "10 300 -"  "5 200 -"
    "30 200 -"  "5 300 -"   "10 600 -"  "20 200 500+every3"     "5 400 -"   "15 300 -"  "10 50 -"
    "5 600 -"   "60 300 -"  "5 800 -"   "10 100 -"  "20 400 -"  "5 50 -"    "15 600 -"
    "20 300 hang+every4"    "5 100 -"   "10 200 -"  "30 600 -"  "5 200 -"   "20 800 -"  "10 400 -"
    "5 400 -"   "15 200 -"  "10 800 -"
)
SCENARIOS=()
RPMS=()
HEALTHY_RPM=0
for i in "${!FLEET[@]}"; do
    read -r rpm ms fault <<<"${FLEET[$i]}"
    sc="id$((i + 1))+rpm$rpm+slow$ms"
    if [ "$fault" = "-" ]; then
        HEALTHY_RPM=$((HEALTHY_RPM + rpm))
    else
        sc+="+$fault"
    fi
    SCENARIOS+=("$sc")
    RPMS+=("$rpm")
done
NKEYS=${#SCENARIOS[@]}
# Offered rate: LOAD_PERCENT of the healthy keys' capacity (the two faulty keys are extra, not counted).
RATE=$(python3 -c "print(round($HEALTHY_RPM * $LOAD_PERCENT / 100 / 60, 4))")

# ---------------------------------------------------------------- pinning and binaries
NCPU=$(nproc)
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then
    PIN_PROXY=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    PINNING="gateway on core 0; mock upstream + bench-load on core 1 (taskset)"
else
    PIN_PROXY=()
    PIN_LOAD=()
    PINNING="none (need taskset and >= 2 cores; found nproc=$NCPU)"
    log "WARNING: no CPU pinning: $PINNING"
fi

cd "$ROOT"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
if [ "$BUILD" = 1 ]; then
    log "cargo build --release -p freellmapi -p mock-provider -p bench-load"
    cargo build --release -p freellmapi -p mock-provider -p bench-load >&2
fi
MOCK_BIN="$BIN_DIR/mock-provider"
LOAD_BIN="$BIN_DIR/bench-load"
GATEWAY_BIN="$BIN_DIR/freellmapi"
for bin in "$MOCK_BIN" "$LOAD_BIN" "$GATEWAY_BIN"; do
    [ -x "$bin" ] || die "$bin missing (build it, or drop --no-build)"
done

# ---------------------------------------------------------------- process bookkeeping
WORK=$(mktemp -d "${TMPDIR:-/tmp}/freellmapi-fleet.XXXXXX")
PIDS=()
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        stop_pid "$pid"
    done
    if [ "$KEEP_TMP" = 1 ]; then
        log "temp dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_http_200() {
    local pid=$1 secs=$2 code deadline
    shift 2
    deadline=$(( $(date +%s) + secs ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

TS=$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/fleet-$TS.jsonl"
REPORT="$OUT_DIR/fleet-$TS.md"
: >"$RESULTS"

CMDLINE="bench/fleet.sh"
for a in "${ORIG_ARGS[@]+"${ORIG_ARGS[@]}"}"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./,=:+-]+$ ]]; then CMDLINE+=" $a"; else CMDLINE+=" $(printf '%q' "$a")"; fi
done
CPU_MODEL=$(grep -m1 -E '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
# The run's settings, as the first JSON line of the results.
python3 - "$RESULTS" <<EOF
import json, sys
fleet = []
for line, sc in zip("""$(printf '%s\n' "${FLEET[@]}")""".splitlines(), """$(printf '%s\n' "${SCENARIOS[@]}")""".splitlines()):
    rpm, ms, fault = line.split()
    fleet.append({"scenario": sc, "rpm": int(rpm), "latency_ms": int(ms), "fault": None if fault == "-" else fault})
meta = {
    "kind": "meta",
    "date": "$(date -u '+%Y-%m-%d %H:%M:%S UTC')",
    "cmdline": "$CMDLINE",
    "git_rev": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')",
    "nproc": $NCPU,
    "cpu_model": "${CPU_MODEL:-unknown}",
    "kernel": "$(uname -srm)",
    "mem_total": "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)",
    "loadavg": "$(cut -d' ' -f1-3 /proc/loadavg)",
    "rustc": "$(rustc --version 2>/dev/null || echo unknown)",
    "pinning": "$PINNING",
    "duration_s": $DURATION,
    "load_percent": $LOAD_PERCENT,
    "healthy_rpm": $HEALTHY_RPM,
    "rate": $RATE,
    "rr_tries": $RR_TRIES,
    "attempt_timeout_s": $ATTEMPT_TIMEOUT_S,
    "fleet": fleet,
}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(meta) + "\n")
EOF
log "fleet: $NKEYS keys, healthy capacity $HEALTHY_RPM rpm; offered $RATE req/s ($LOAD_PERCENT %) for $DURATION s per system"

# ---------------------------------------------------------------- one phase
MOCK_PID=""
MOCK_PORT=""
start_mock() {
    "${PIN_LOAD[@]}" "$MOCK_BIN" --listen 127.0.0.1:0 >"$WORK/mock-$1.log" 2>&1 &
    MOCK_PID=$!
    PIDS+=("$MOCK_PID")
    MOCK_PORT=""
    for _ in $(seq 1 100); do
        MOCK_PORT=$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$WORK/mock-$1.log" | head -n1)
        [ -n "$MOCK_PORT" ] && break
        kill -0 "$MOCK_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$MOCK_PORT" ] || { cat "$WORK/mock-$1.log" >&2; die "mock-provider did not start"; }
}

# Scenario suffix per system: `router-429` gets keys that send no `x-ratelimit-*` headers, so the router can learn
# only from 429 + Retry-After.
suffix_of() {
    if [ "$1" = router-429 ]; then echo "+noratehdr"; else echo ""; fi
}

GATEWAY_PID=""
GATEWAY_PORT=""
start_gateway() {
    local system=$1 dir="$WORK/$1" i suffix
    suffix=$(suffix_of "$system")
    GATEWAY_PORT=$(free_port)
    mkdir -p "$dir/data"
    {
        for i in "${!SCENARIOS[@]}"; do
            printf '[[provider_keys]]\nname = "fleet-%02d"\nplatform = "custom"\nbase_url = "http://127.0.0.1:%s/%s%s/v1"\nmodels = ["%s"]\n\n' \
                "$((i + 1))" "$MOCK_PORT" "${SCENARIOS[$i]}" "$suffix" "$MODEL"
        done
        printf '[[gateway_keys]]\nname = "fleet"\nkey = "%s"\n' "$GATEWAY_KEY"
    } >"$dir/gateway.toml"
    PORT=$GATEWAY_PORT HOST_BIND=127.0.0.1 DATA_DIR="$dir/data" FREELLMAPI_CONFIG="$dir/gateway.toml" \
        PROXY_RATE_LIMIT_RPM=0 ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_LEVEL=info LOG_FORMAT=json \
        PROVIDER_TIMEOUT_MS=$((ATTEMPT_TIMEOUT_S * 1000)) \
        "${PIN_PROXY[@]}" "$GATEWAY_BIN" serve >"$dir/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    PIDS+=("$GATEWAY_PID")
    wait_http_200 "$GATEWAY_PID" 30 "http://127.0.0.1:$GATEWAY_PORT/api/ping" \
        || { tail -n 40 "$dir/gateway.log" >&2 || true; die "gateway did not answer GET /api/ping within 30 s"; }
}

# Declares every key's RPM through the admin API (the tiers the router may pace by).
declare_limits() {
    local dir="$WORK/$1" token
    token=$(curl -sf --max-time 5 -H 'Content-Type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" \
        "http://127.0.0.1:$GATEWAY_PORT/api/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') \
        || die "admin login failed"
    curl -sf --max-time 5 -H "Authorization: Bearer $token" "http://127.0.0.1:$GATEWAY_PORT/api/keys" >"$dir/keys.json" \
        || die "GET /api/keys failed"
    python3 - "$dir/keys.json" "$MOCK_PORT" "$(printf '%s\n' "${SCENARIOS[@]}")" "$(printf '%s\n' "${RPMS[@]}")" >"$dir/limits.tsv" <<'EOF'
import json, sys
keys = json.load(open(sys.argv[1]))["data"]
port = sys.argv[2]
rpm_of = dict(zip(sys.argv[3].split(), (int(r) for r in sys.argv[4].split())))
for k in keys:
    scenario = k["base_url"].split(f"127.0.0.1:{port}/", 1)[1].rsplit("/v1", 1)[0]
    print(f"{k['id']}\t{rpm_of[scenario]}")
EOF
    [ "$(wc -l <"$dir/limits.tsv")" = "$NKEYS" ] || die "expected $NKEYS keys in /api/keys"
    while IFS=$'\t' read -r id rpm; do
        curl -sf --max-time 5 -o /dev/null -X PATCH -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d "{\"limits\":{\"rpm\":$rpm}}" "http://127.0.0.1:$GATEWAY_PORT/api/keys/$id" || die "PATCH /api/keys/$id failed"
    done <"$dir/limits.tsv"
    curl -sf --max-time 5 -H "Authorization: Bearer $token" "http://127.0.0.1:$GATEWAY_PORT/api/keys" >"$dir/keys-limited.json"
    python3 - "$dir/keys-limited.json" "$NKEYS" <<'EOF' || die "the declared limits did not take effect"
import json, sys
keys = json.load(open(sys.argv[1]))["data"]
assert len(keys) == int(sys.argv[2]) and all((k.get("effective_limits") or {}).get("rpm") for k in keys)
EOF
}

mock_stats() {
    curl -sf --max-time 5 "http://127.0.0.1:$MOCK_PORT/__stats" || echo '{}'
}

run_phase() {
    local system=$1 dir="$WORK/$1" before after load_json grace
    mkdir -p "$dir"
    log "== $system: starting mock"
    start_mock "$system"
    local load_args=(--rate "$RATE" --duration-secs "$DURATION" --label "$system" --body "$BODY" --max-in-flight 2000)
    if [ "$system" = round-robin ]; then
        : >"$dir/upstreams.txt"
        for sc in "${SCENARIOS[@]}"; do
            echo "http://127.0.0.1:$MOCK_PORT/$sc/v1/chat/completions" >>"$dir/upstreams.txt"
        done
        grace=$((ATTEMPT_TIMEOUT_S * RR_TRIES + 10))
        load_args+=(--upstreams-file "$dir/upstreams.txt" --tries "$RR_TRIES" --timeout-secs "$ATTEMPT_TIMEOUT_S" --grace-secs "$grace")
    else
        start_gateway "$system"
        [ "$system" = router-limits ] && declare_limits "$system"
        # A request may wait in the queue (60 s by default), then try keys: room for both.
        grace=$((60 + 3 * ATTEMPT_TIMEOUT_S + 10))
        load_args+=(--url "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions"
            --header "Authorization: Bearer $GATEWAY_KEY" --grace-secs "$grace")
    fi
    before=$(mock_stats)
    log "== $system: $RATE req/s for $DURATION s (+ up to $grace s for the last answers)"
    load_json=$(timeout $((DURATION + grace + 30)) "${PIN_LOAD[@]}" "$LOAD_BIN" "${load_args[@]}") \
        || die "bench-load failed for $system"
    after=$(mock_stats)
    python3 - "$RESULTS" "$system" "$load_json" "$before" "$after" "$(suffix_of "$system")" <<'EOF'
import json, sys
row = {"kind": "phase", "system": sys.argv[2], "load": json.loads(sys.argv[3]),
       "mock_before": json.loads(sys.argv[4]), "mock_after": json.loads(sys.argv[5]), "scenario_suffix": sys.argv[6]}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(row) + "\n")
EOF
    log "== $system: $load_json"
    [ -n "$GATEWAY_PID" ] && { stop_pid "$GATEWAY_PID"; GATEWAY_PID=""; }
    stop_pid "$MOCK_PID"
    MOCK_PID=""
}

for system in "${SYSTEM_LIST[@]}"; do
    run_phase "$system"
done

python3 "$ROOT/bench/fleet_report.py" "$RESULTS" >"$REPORT"
cat "$REPORT"
log "report: $REPORT (raw: $RESULTS)"
