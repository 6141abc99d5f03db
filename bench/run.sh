#!/usr/bin/env bash
# bench/run.sh: feed the same closed-loop workload to three targets and write a report.
#
#   direct   the mock upstream (crates/mock-provider) on its own
#   nginx    Debian nginx reverse-proxying to the mock (keep-alive upstream, no buffering)
#   gateway  `freellmapi serve` routing to the mock as a custom OpenAI-compatible provider
#   responses  the same gateway through POST /v1/responses (OpenAI Responses, translated to chat and back)
#   messages   the same gateway through POST /v1/messages (Anthropic Messages, translated to chat and back)
#   pg         the gateway on PostgreSQL (FREELLMAPI_BENCH_POSTGRES_URL, default the local server), its key with an
#              rpm limit far above the load, so every request takes a limit permit
#   fleet      the same with REDIS_URL (a private redis-server on the load core): every permit also taken from the
#              shared ledger, one Lua script call per request
#
# Everything listens on 127.0.0.1, every process is started by this script and killed on
# exit, and every load run is bounded in time. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="$ROOT/bench/out"

TARGETS="direct,nginx,gateway,responses,messages"
BENCH_PG=${FREELLMAPI_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DURATION=10
WARMUP=2
RUNS=2
CONCURRENCY="1,16,128"
MOCK_CHUNKS=20
KEEP_TMP=0
BUILD=1
PERF=0

GATEWAY_KEY="freellmapi-bench-0123456789abcdef0123456789abcdef"
BODY='{"model":"mock-model","messages":[{"role":"user","content":"Say hello"}]}'
BODY_STREAM='{"model":"mock-model","messages":[{"role":"user","content":"Say hello"}],"stream":true}'
RESPONSES_BODY='{"model":"mock-model","input":"Say hello"}'
RESPONSES_BODY_STREAM='{"model":"mock-model","input":"Say hello","stream":true}'
MESSAGES_BODY='{"model":"mock-model","max_tokens":256,"messages":[{"role":"user","content":"Say hello"}]}'
MESSAGES_BODY_STREAM='{"model":"mock-model","max_tokens":256,"messages":[{"role":"user","content":"Say hello"}],"stream":true}'

usage() {
    cat <<EOF
usage: bench/run.sh [--targets direct,nginx,gateway] [--duration SECS] [--warmup SECS]
                    [--runs N] [--concurrency 1,16,128] [--keep-tmp] [--no-build]

  --targets      comma-separated subset of direct,nginx,gateway,responses,messages,pg,fleet
                 (default: direct,nginx,gateway,responses,messages)
  --duration     measured seconds per phase (default 10)
  --warmup       discarded warm-up seconds per phase (default 2)
  --runs         repetitions of every phase per target (default 2)
  --concurrency  comma-separated connection counts (default 1,16,128)
  --keep-tmp     keep the temp dir (configs, logs, gateway data) for inspection
  --no-build     do not run cargo build (use the existing target/release binaries)
  --perf         also sample the proxy process with `perf record -g` during every measured phase
                 and write bench/out/perf-<timestamp>-<target>-<mode>-c<N>-run<R>.{data,txt}
                 (the .txt is the top of `perf report --no-children`); CPU figures of a sampled
                 phase include perf's own overhead, so do not mix them with unsampled runs

Environment: FREELLMAPI_BIN=/path/to/freellmapi benchmarks that binary instead of
target/release/freellmapi (and skips building it).

Writes bench/out/report-<timestamp>.md (+ raw results-<timestamp>.jsonl) and prints the
report on stdout. Progress goes to stderr.
EOF
}

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[bench] $*" >&2; }

ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --targets) TARGETS=${2:?--targets needs a value}; shift 2 ;;
        --targets=*) TARGETS=${1#*=}; shift ;;
        --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
        --warmup=*) WARMUP=${1#*=}; shift ;;
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --concurrency) CONCURRENCY=${2:?--concurrency needs a value}; shift 2 ;;
        --concurrency=*) CONCURRENCY=${1#*=}; shift ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --perf) PERF=1; command -v perf >/dev/null || die "--perf needs perf (apt-get install -y linux-perf)"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 && "$DURATION" -le 600 ]] || die "--duration must be an integer in 1..600"
[[ "$WARMUP" =~ ^[0-9]+$ && "$WARMUP" -le 600 ]] || die "--warmup must be an integer in 0..600"
[[ "$RUNS" =~ ^[0-9]+$ && "$RUNS" -ge 1 && "$RUNS" -le 10 ]] || die "--runs must be in 1..10"
[[ "$CONCURRENCY" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--concurrency must look like 1,16,128"
IFS=',' read -r -a LEVELS <<<"$CONCURRENCY"
for c in "${LEVELS[@]}"; do
    [ "$c" -ge 1 ] && [ "$c" -le 4096 ] || die "concurrency $c out of range 1..4096"
done
IFS=',' read -r -a TARGET_LIST <<<"$TARGETS"
[ "${#TARGET_LIST[@]}" -ge 1 ] || die "--targets is empty"
for t in "${TARGET_LIST[@]}"; do
    case "$t" in direct|nginx|gateway|responses|messages|pg|fleet) ;; *) die "unknown target: $t" ;; esac
done
has_target() { [[ ",$TARGETS," == *",$1,"* ]]; }
# Whether any target runs the gateway (chat completions or a translated surface).
needs_gateway() { has_target gateway || has_target responses || has_target messages || has_target pg || has_target fleet; }

for tool in curl python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# ---------------------------------------------------------------- pinning
# Proxy (nginx / gateway) on core 0; mock upstream and load generator on core 1.
NCPU=$(nproc)
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then
    PIN_PROXY=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    PINNING="proxy (nginx/gateway) on core 0; mock upstream + bench-load on core 1 (taskset)"
else
    PIN_PROXY=()
    PIN_LOAD=()
    PINNING="none (need taskset and >= 2 cores; found nproc=$NCPU)"
    log "WARNING: no CPU pinning: $PINNING"
fi

# ---------------------------------------------------------------- build
cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    PKGS=(-p mock-provider -p bench-load)
    needs_gateway && [ -z "${FREELLMAPI_BIN:-}" ] && PKGS+=(-p freellmapi)
    log "cargo build --release ${PKGS[*]}"
    cargo build --release "${PKGS[@]}" >&2
fi
MOCK_BIN="$ROOT/target/release/mock-provider"
LOAD_BIN="$ROOT/target/release/bench-load"
GATEWAY_BIN="${FREELLMAPI_BIN:-$ROOT/target/release/freellmapi}"
[ -x "$MOCK_BIN" ] || die "$MOCK_BIN missing (build it, or drop --no-build)"
[ -x "$LOAD_BIN" ] || die "$LOAD_BIN missing (build it, or drop --no-build)"
if needs_gateway; then
    [ -x "$GATEWAY_BIN" ] || die "$GATEWAY_BIN missing (cargo build --release -p freellmapi)"
fi
if has_target nginx && ! command -v nginx >/dev/null; then
    log "nginx not found: apt-get install -y nginx"
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2 \
            || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2; } \
            || die "could not install nginx"
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2 || die "could not install nginx"
    fi
fi
NGINX_BIN=$(command -v nginx || true)

# ---------------------------------------------------------------- process bookkeeping
WORK=$(mktemp -d "${TMPDIR:-/tmp}/freellmapi-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for i in $(seq 1 30); do
        local alive=0
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
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

# Stops one process we started (TERM, then KILL after 3 s) and forgets it.
stop_pid() {
    local pid=$1 i keep=()
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for i in "${PIDS[@]}"; do [ "$i" != "$pid" ] && keep+=("$i"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# utime+stime (clock ticks) of a process, all threads included; fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that closes the command name.
cpu_ticks() {
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
# Machine-wide busy (user+nice+system+irq+softirq), total and steal ticks from /proc/stat.
# Busy time includes the tick-sampled softirq time also charged to our processes, so
# "busy minus our processes" is the CPU used by everything else on the machine.
sys_ticks() {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9; exit}' /proc/stat
}
# Sets CHILD_CPU_S to the CPU seconds (user+sys) of this shell's reaped children, from
# the `times` builtin. Call it directly, never inside $(...): a subshell has no children.
children_cpu_s() {
    times >"$WORK/times.txt"
    CHILD_CPU_S=$(awk 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
        printf "%.3f\n", t
    }' "$WORK/times.txt")
}
vmhwm_kb() {
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo ""
}

# Polls until `curl` returns 200 for the given arguments, the process dies, or time runs out.
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
RESULTS="$OUT_DIR/results-$TS.jsonl"
REPORT="$OUT_DIR/report-$TS.md"
META="$WORK/meta.tsv"
: >"$RESULTS"
: >"$META"
meta() { printf '%s\t%s\n' "$1" "$(printf '%s' "$2" | tr '\t\n' '  ')" >>"$META"; }

CMDLINE="bench/run.sh"
for a in "${ORIG_ARGS[@]+"${ORIG_ARGS[@]}"}"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./,=:+-]+$ ]]; then CMDLINE+=" $a"; else CMDLINE+=" $(printf '%q' "$a")"; fi
done
CPU_MODEL=$(grep -m1 -E '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
[ -n "$CPU_MODEL" ] || CPU_MODEL=$(LC_ALL=C lscpu 2>/dev/null | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}' || true)
CLK_TCK=$(getconf CLK_TCK)
meta date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
meta cmdline "$CMDLINE"
meta nproc "$NCPU"
meta cpu_model "${CPU_MODEL:-unknown}"
meta kernel "$(uname -srm)"
meta mem_total "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
meta clk_tck "$CLK_TCK"
meta loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
meta pinning "$PINNING"
meta targets "$TARGETS"
meta duration "$DURATION"
meta warmup "$WARMUP"
meta runs "$RUNS"
meta concurrency "$CONCURRENCY"
meta mock_chunks "$MOCK_CHUNKS"
meta rustc "$(rustc --version 2>/dev/null || echo unknown)"
meta git_rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
[ -n "$NGINX_BIN" ] && has_target nginx && meta nginx_version "$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')"
if has_target nginx && pgrep -x nginx >/dev/null 2>&1; then
    meta note "other nginx processes were already running on this machine (not ours; idle)"
fi

# ---------------------------------------------------------------- mock upstream
log "starting mock-provider (--chunks $MOCK_CHUNKS)"
"${PIN_LOAD[@]}" "$MOCK_BIN" --listen 127.0.0.1:0 --chunks "$MOCK_CHUNKS" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_PORT=""
for _ in $(seq 1 100); do
    MOCK_PORT=$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$WORK/mock.log" | head -n1)
    [ -n "$MOCK_PORT" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$MOCK_PORT" ] || { cat "$WORK/mock.log" >&2; die "mock-provider did not start"; }
log "mock upstream on 127.0.0.1:$MOCK_PORT"

# ---------------------------------------------------------------- targets
TARGET_PID=""     # proxy process whose CPU time is measured (empty for direct)
TARGET_URL=""
TARGET_LOG=""
LOAD_HEADERS=()   # extra bench-load arguments (auth header)
CURL_HEADERS=()
# The workload of the target's surface: request bodies and what ends a complete stream.
TARGET_BODY=$BODY
TARGET_BODY_STREAM=$BODY_STREAM
TARGET_STREAM_END="[DONE]"

chat_surface() {
    TARGET_BODY=$BODY
    TARGET_BODY_STREAM=$BODY_STREAM
    TARGET_STREAM_END="[DONE]"
}

start_direct() {
    chat_surface
    TARGET_PID=""
    TARGET_URL="http://127.0.0.1:$MOCK_PORT/ok/v1/chat/completions"
    TARGET_LOG="$WORK/mock.log"
    LOAD_HEADERS=()
    CURL_HEADERS=()
}

start_nginx() {
    [ -n "$NGINX_BIN" ] || { log "nginx is not installed"; return 1; }
    chat_surface
    local dir="$WORK/nginx" port
    port=$(free_port)
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
# Generated by bench/run.sh; nothing outside this directory is read or written.
daemon off;
master_process off;
worker_processes 1;
error_log $dir/error.log warn;
pid $dir/nginx.pid;

events {
    worker_connections 4096;
}

http {
    # Kept on for fairness: the gateway also writes one log line per request.
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    # The load generator reuses each connection for the whole phase.
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:$port;

        location /v1/ {
            proxy_pass http://mock/ok/v1/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
    log "starting nginx on 127.0.0.1:$port"
    "${PIN_PROXY[@]}" "$NGINX_BIN" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        >"$dir/stdout.log" 2>&1 &
    TARGET_PID=$!
    PIDS+=("$TARGET_PID")
    TARGET_URL="http://127.0.0.1:$port/v1/chat/completions"
    TARGET_LOG="$dir/error.log"
    LOAD_HEADERS=()
    CURL_HEADERS=()
    wait_http_200 "$TARGET_PID" 10 -X POST -H 'Content-Type: application/json' -d "$BODY" "$TARGET_URL" \
        || { cat "$dir/stdout.log" "$dir/error.log" >&2 2>/dev/null || true; log "nginx did not become ready"; return 1; }
}

# Extra environment and key settings of the next gateway start (the pg and fleet targets set them).
GATEWAY_ENV=()
GATEWAY_KEY_EXTRA=""

start_gateway() {
    chat_surface
    local dir="$WORK/gateway" port
    port=$(free_port)
    rm -rf "$dir"
    mkdir -p "$dir/data"
    cat >"$dir/gateway.toml" <<EOF
[[provider_keys]]
name = "bench-mock"
platform = "custom"
label = "bench mock"
base_url = "http://127.0.0.1:$MOCK_PORT/ok/v1"
models = ["mock-model"]
$GATEWAY_KEY_EXTRA

[[gateway_keys]]
name = "bench"
key = "$GATEWAY_KEY"
EOF
    log "starting gateway on 127.0.0.1:$port"
    env "${GATEWAY_ENV[@]+"${GATEWAY_ENV[@]}"}" \
        PORT=$port HOST_BIND=127.0.0.1 DATA_DIR="$dir/data" FREELLMAPI_CONFIG="$dir/gateway.toml" \
        PROXY_RATE_LIMIT_RPM=0 ADMIN_PASSWORD=bench-password-123 LOG_LEVEL=info LOG_FORMAT=json \
        "${PIN_PROXY[@]}" "$GATEWAY_BIN" serve >"$dir/gateway.log" 2>&1 &
    TARGET_PID=$!
    PIDS+=("$TARGET_PID")
    TARGET_URL="http://127.0.0.1:$port/v1/chat/completions"
    TARGET_LOG="$dir/gateway.log"
    LOAD_HEADERS=(--header "Authorization: Bearer $GATEWAY_KEY")
    CURL_HEADERS=(-H "Authorization: Bearer $GATEWAY_KEY")
    wait_http_200 "$TARGET_PID" 20 "http://127.0.0.1:$port/api/ping" \
        || { tail -n 40 "$dir/gateway.log" >&2 || true; log "gateway did not answer GET /api/ping with 200 within 20 s"; return 1; }
}

# The gateway through its translated surfaces: same process settings, same mock, another wire format.
start_responses() {
    start_gateway || return 1
    TARGET_URL=${TARGET_URL%/chat/completions}/responses
    TARGET_BODY=$RESPONSES_BODY
    TARGET_BODY_STREAM=$RESPONSES_BODY_STREAM
    TARGET_STREAM_END="response.completed"
}

start_messages() {
    start_gateway || return 1
    TARGET_URL=${TARGET_URL%/chat/completions}/messages
    TARGET_BODY=$MESSAGES_BODY
    TARGET_BODY_STREAM=$MESSAGES_BODY_STREAM
    TARGET_STREAM_END="message_stop"
}

# A fresh database on the PostgreSQL server of $BENCH_PG; prints its URL.
fresh_pg_database() {
    command -v psql >/dev/null || { log "psql is required for the pg and fleet targets"; return 1; }
    local name="freellmapi_bench_$(date +%s)_$RANDOM"
    psql -q "$BENCH_PG" -c "CREATE DATABASE $name" >&2 || { log "cannot create a database on $BENCH_PG"; return 1; }
    echo "${BENCH_PG%/*}/$name"
}

# The gateway on PostgreSQL with a capped key: the baseline of the fleet target.
start_pg() {
    local db rc=0
    db=$(fresh_pg_database) || return 1
    GATEWAY_ENV=(DATABASE_URL="$db")
    GATEWAY_KEY_EXTRA='limits = { rpm = 1000000000, no_catalog_limits = true }'
    start_gateway || rc=$?
    GATEWAY_ENV=()
    GATEWAY_KEY_EXTRA=""
    return $rc
}

REDIS_PID=""
start_fleet() {
    command -v redis-server >/dev/null || { log "redis-server is required for the fleet target"; return 1; }
    local db rport rc=0
    db=$(fresh_pg_database) || return 1
    rport=$(free_port)
    "${PIN_LOAD[@]}" redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no \
        >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break
        sleep 0.1
    done
    GATEWAY_ENV=(DATABASE_URL="$db" REDIS_URL="redis://127.0.0.1:$rport/")
    GATEWAY_KEY_EXTRA='limits = { rpm = 1000000000, no_catalog_limits = true }'
    start_gateway || rc=$?
    GATEWAY_ENV=()
    GATEWAY_KEY_EXTRA=""
    return $rc
}

# One non-streaming and one streaming request through the target must succeed.
smoke_test() {
    local code mode body
    for mode in plain stream; do
        body=$TARGET_BODY
        [ "$mode" = stream ] && body=$TARGET_BODY_STREAM
        code=$(curl -s -o "$WORK/smoke.out" -w '%{http_code}' --max-time 10 -X POST \
            -H 'Content-Type: application/json' "${CURL_HEADERS[@]+"${CURL_HEADERS[@]}"}" \
            -d "$body" "$TARGET_URL" || true)
        if [ "$code" != 200 ]; then
            log "smoke test ($mode) failed with HTTP $code; body:"
            head -c 2000 "$WORK/smoke.out" >&2 || true
            echo >&2
            return 1
        fi
        if [ "$mode" = stream ] && ! grep -qF "$TARGET_STREAM_END" "$WORK/smoke.out"; then
            log "smoke test (stream) did not end with $TARGET_STREAM_END"
            return 1
        fi
    done
}

# run_phase TARGET RUN MODE CONCURRENCY: one bench-load invocation, appends one JSON line.
run_phase() {
    local target=$1 run=$2 mode=$3 conc=$4 before="null" after="null" ticks="null" load rc=0 body stream_flag=()
    body=$TARGET_BODY
    if [ "$mode" = stream ]; then
        body=$TARGET_BODY_STREAM
        stream_flag=(--stream)
        [ "$TARGET_STREAM_END" != "[DONE]" ] && stream_flag+=(--stream-end "$TARGET_STREAM_END")
    fi
    [ -n "$TARGET_PID" ] && before=$(cpu_ticks "$TARGET_PID")
    local mock_before sys_before child_before mock_after sys_after child_after
    mock_before=$(cpu_ticks "$MOCK_PID")
    children_cpu_s
    child_before=$CHILD_CPU_S
    sys_before=$(sys_ticks)
    timeout -k 5 $((WARMUP + DURATION + 30)) "${PIN_LOAD[@]}" "$LOAD_BIN" \
        --url "$TARGET_URL" --concurrency "$conc" --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
        "${stream_flag[@]+"${stream_flag[@]}"}" "${LOAD_HEADERS[@]+"${LOAD_HEADERS[@]}"}" \
        --body "$body" --label "$target run$run $mode c=$conc" \
        >"$WORK/load.out" 2>"$WORK/load.err" &
    local load_pid=$!
    PIDS+=("$load_pid")
    local perf_pid="" perf_base=""
    if [ "$PERF" = 1 ] && [ -n "$TARGET_PID" ]; then
        perf_base="$OUT_DIR/perf-$TS-$target-$mode-c$conc-run$run"
        # Sample only the measured seconds: skip the warm-up, stop before the load does.
        (sleep "$WARMUP"; exec perf record -q -F 1999 -g -p "$TARGET_PID" -o "$perf_base.data" -- sleep "$DURATION") \
            >"$perf_base.log" 2>&1 &
        perf_pid=$!
    fi
    wait "$load_pid" || rc=$?
    stop_pid "$load_pid"
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" 2>/dev/null || true
        perf report -i "$perf_base.data" --stdio --no-children --percent-limit 0.7 -g none \
            >"$perf_base.txt" 2>/dev/null || true
        log "perf profile: $perf_base.txt"
    fi
    sys_after=$(sys_ticks)
    children_cpu_s
    child_after=$CHILD_CPU_S
    mock_after=$(cpu_ticks "$MOCK_PID")
    if [ -n "$TARGET_PID" ]; then
        after=$(cpu_ticks "$TARGET_PID" 2>/dev/null || echo "")
        [ -n "$after" ] && ticks=$((after - before))
    fi
    load=$(head -n1 "$WORK/load.out")
    if [ "$rc" != 0 ] || [ -z "$load" ]; then
        log "bench-load failed (exit $rc): $(head -c 500 "$WORK/load.err")"
        load="null"
    fi
    local machine
    machine=$(awk -v b="$sys_before" -v a="$sys_after" -v m0="$mock_before" -v m1="$mock_after" \
        -v c0="$child_before" -v c1="$child_after" -v hz="$CLK_TCK" 'BEGIN {
            split(b, x, " "); split(a, y, " ")
            printf "{\"busy_ticks\":%d,\"total_ticks\":%d,\"steal_ticks\":%d,\"mock_ticks\":%d,\"load_ticks\":%d}",
                y[1] - x[1], y[2] - x[2], y[3] - x[3], m1 - m0, (c1 - c0) * hz + 0.5
        }')
    printf '{"target":"%s","run":%d,"mode":"%s","concurrency":%d,"cpu_ticks":%s,"machine":%s,"load":%s}\n' \
        "$target" "$run" "$mode" "$conc" "$ticks" "$machine" "$load" >>"$RESULTS"
    if [ "$load" != null ]; then
        python3 - "$load" "$ticks" "$CLK_TCK" "$machine" <<'PY' >&2
import json, sys
r = json.loads(sys.argv[1])
ticks, hz, m = sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
cpu = ""
if ticks != "null" and r.get("requests_incl_warmup"):
    cpu = f" cpu={int(ticks) * 1e6 / hz / r['requests_incl_warmup']:.1f}us/req"
ours = (int(ticks) if ticks != "null" else 0) + m["mock_ticks"] + m["load_ticks"]
if m["total_ticks"] > 0:
    cpu += f" other={max(0, m['busy_ticks'] - ours) * 100 / m['total_ticks']:.0f}%"
fmt = lambda v: "-" if v is None else f"{v:.3f}"
print(f"[bench]   {r['label']:<28} rps={r['rps']:>10.1f} p50={fmt(r['p50_ms'])} "
      f"p99={fmt(r['p99_ms'])} ttfb50={fmt(r['ttfb_p50_ms'])} errors={r['errors']}{cpu}")
PY
    fi
}

for target in "${TARGET_LIST[@]}"; do
    log "=== target: $target"
    if ! "start_$target"; then
        meta failed "$target: did not start (see stderr)"
        [ -n "$TARGET_PID" ] && stop_pid "$TARGET_PID"
        TARGET_PID=""
        continue
    fi
    if ! smoke_test; then
        tail -n 20 "$TARGET_LOG" >&2 2>/dev/null || true
        meta failed "$target: smoke request did not return 200"
        [ -n "$TARGET_PID" ] && stop_pid "$TARGET_PID"
        TARGET_PID=""
        continue
    fi
    for run in $(seq 1 "$RUNS"); do
        for mode in plain stream; do
            for conc in "${LEVELS[@]}"; do
                run_phase "$target" "$run" "$mode" "$conc"
            done
        done
    done
    if [ -n "$TARGET_PID" ]; then
        meta "rss_kb_$target" "$(vmhwm_kb "$TARGET_PID")"
        kill -0 "$TARGET_PID" 2>/dev/null || meta failed "$target: process exited during the run"
        stop_pid "$TARGET_PID"
    fi
    case "$target" in
        nginx) meta nginx_access_log_lines "$(wc -l <"$WORK/nginx/access.log" 2>/dev/null || echo 0)" ;;
        gateway|responses|messages|pg|fleet) meta "${target}_log_lines" "$(wc -l <"$WORK/gateway/gateway.log" 2>/dev/null || echo 0)" ;;
    esac
    if [ "$target" = fleet ] && [ -n "$REDIS_PID" ]; then
        meta redis_cpu_s "$(awk -v t="$CLK_TCK" '{printf "%.2f", $0 / t}' <<<"$(cpu_ticks "$REDIS_PID")")"
        stop_pid "$REDIS_PID"
        REDIS_PID=""
    fi
    TARGET_PID=""
done
meta rss_kb_mock "$(vmhwm_kb "$MOCK_PID")"
stop_pid "$MOCK_PID"

python3 "$ROOT/bench/report.py" --results "$RESULTS" --meta "$META" --out "$REPORT"
log "report: $REPORT"
log "raw results: $RESULTS"
cat "$REPORT"
