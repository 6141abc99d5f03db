#!/usr/bin/env bash
# bench/soak.sh: a long run of mixed traffic with faults through one gateway, watching the gateway process for
# leaks. Traffic: chat completions streamed and not, /v1/responses and /v1/messages streams, and clients that
# vanish mid-stream, over six mock keys for one model, of which five fail now and then (429, 500, a stall after
# the first tokens, a cut stream, a slow answer). Every SAMPLE seconds it records the gateway's RSS, open file
# descriptors, threads and in-flight requests (from /metrics).
#
# Passes when, after the first fifth of the run (warm-up): RSS stays within ±10 % of its first post-warm-up sample
# and the open descriptors grow by at most 8 over it; once the load has stopped, the in-flight gauge is back to 0
# (no request task left behind) and the descriptors are no more than under load (idle pooled upstream connections
# stay open until their idle timeout). Prints a report (also written to
# bench/out/soak-<timestamp>.md) and exits 1 when a check fails.
#
# Everything listens on 127.0.0.1, every process is started by this script and killed on exit, and the run stops
# by itself after --duration. scripts/test.sh runs a 5-minute variant on the debug build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="$ROOT/bench/out"
DURATION=3600
SAMPLE=10
PROFILE=release
BUILD=1
GATEWAY_KEY="freellmapi-soak-0123456789abcdef0123456789"
METRICS_TOKEN="soak-metrics-token-0123456789"

usage() {
    cat <<EOF
usage: bench/soak.sh [--duration SECS] [--sample SECS] [--debug] [--no-build]

  --duration  seconds of load (default 3600; at least 30)
  --sample    seconds between samples of the gateway process (default 10)
  --debug     use the debug binaries (default: release)
  --no-build  use the binaries already built
EOF
}

die() { echo "soak.sh: $*" >&2; exit 2; }
log() { echo "[soak] $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
        --sample) SAMPLE=${2:?--sample needs a value}; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument $1" ;;
    esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 30 ] || die "--duration must be a whole number of seconds, at least 30"
[[ "$SAMPLE" =~ ^[0-9]+$ ]] && [ "$SAMPLE" -ge 1 ] || die "--sample must be a whole number of seconds"

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
if [ "$BUILD" = 1 ]; then
    flag=(); [ "$PROFILE" = release ] && flag=(--release)
    (cd "$ROOT" && cargo build --quiet "${flag[@]}" -p freellmapi -p mock-provider -p bench-load)
fi
for b in freellmapi mock-provider bench-load; do
    [ -x "$TARGET/$b" ] || die "$TARGET/$b is missing (build it, or drop --no-build)"
done
command -v curl >/dev/null || die "curl is needed"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

MOCK_PORT=$(free_port)
"$TARGET/mock-provider" --listen "127.0.0.1:$MOCK_PORT" --no-record >"$WORK/mock.log" 2>&1 &
PIDS+=($!)

PORT=$(free_port)
mkdir -p "$WORK/data"
{
    for sc in ok "429+every4+id1" "500+every6+id2" "stallafter3+every5+id3" "cut5+every3+id4" "slow50+id5"; do
        printf '[[provider_keys]]\nname = "soak-%s"\nplatform = "custom"\nbase_url = "http://127.0.0.1:%s/%s/v1"\nmodels = ["m"]\n\n' \
            "${sc//+/-}" "$MOCK_PORT" "$sc"
    done
    printf '[[gateway_keys]]\nname = "soak"\nkey = "%s"\n' "$GATEWAY_KEY"
} >"$WORK/gateway.toml"
PORT=$PORT HOST_BIND=127.0.0.1 DATA_DIR="$WORK/data" FREELLMAPI_CONFIG="$WORK/gateway.toml" \
    ADMIN_PASSWORD=soak-password-123 PROXY_RATE_LIMIT_RPM=0 LOG_LEVEL=warn METRICS_TOKEN=$METRICS_TOKEN \
    STREAM_FIRST_TOKEN_STALL_MS=1000 PROVIDER_STREAM_STALL_TIMEOUT_MS=1000 REQUEST_QUEUE_TIMEOUT_SECONDS=1 \
    "$TARGET/freellmapi" serve >"$WORK/gateway.log" 2>&1 &
GW=$!
PIDS+=($GW)
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 200); do
    curl -sf "$BASE/api/ping" >/dev/null 2>&1 && break
    kill -0 "$GW" 2>/dev/null || { cat "$WORK/gateway.log" >&2; die "the gateway exited at start"; }
    sleep 0.1
done
curl -sf "$BASE/api/ping" >/dev/null || die "the gateway did not answer /api/ping"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$GW/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$GW/status"; }
fds() { find "/proc/$GW/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
in_flight() {
    curl -sf -H "Authorization: Bearer $METRICS_TOKEN" "$BASE/metrics" \
        | awk '/^freellmapi_requests_in_flight/ {s += $2} END {print s + 0}'
}

# One request of each kind first, so the idle figures are those of a gateway that has served.
chat='{"model":"m","messages":[{"role":"user","content":"Say hello"}]}'
curl -s -o /dev/null -H "Authorization: Bearer $GATEWAY_KEY" -H 'Content-Type: application/json' \
    -d "$chat" "$BASE/v1/chat/completions" || true
sleep 1
IDLE_FDS=$(fds)
IDLE_RSS=$(rss_kb)
log "gateway pid $GW on :$PORT, idle: ${IDLE_RSS} kB RSS, $IDLE_FDS fds; load for ${DURATION}s"

load() { # label concurrency url body [--stream end]
    local label=$1 c=$2 url=$3 body=$4; shift 4
    "$TARGET/bench-load" --url "$BASE$url" -c "$c" --duration-secs "$DURATION" --warmup-secs 0 \
        --header "Authorization: Bearer $GATEWAY_KEY" --body "$body" --label "$label" "$@" \
        >"$WORK/load-$label.json" 2>"$WORK/load-$label.err" &
    PIDS+=($!)
    LOADS+=($!)
}
LOADS=()
load chat 4 /v1/chat/completions "$chat"
load chat-stream 4 /v1/chat/completions '{"model":"m","messages":[{"role":"user","content":"Say hello"}],"stream":true}' \
    --stream --stream-end '[DONE]'
load responses-stream 2 /v1/responses '{"model":"m","input":"Say hello","stream":true}' \
    --stream --stream-end 'response.completed'
load messages-stream 2 /v1/messages '{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"Say hello"}],"stream":true}' \
    --stream --stream-end 'message_stop'
# Clients that go away a moment into a stream.
(
    end=$((SECONDS + DURATION))
    n=0
    while [ $SECONDS -lt $end ]; do
        curl -sN -m 0.05 -o /dev/null -H "Authorization: Bearer $GATEWAY_KEY" -H 'Content-Type: application/json' \
            -d '{"model":"m","messages":[{"role":"user","content":"Say hello"}],"stream":true}' \
            "$BASE/v1/chat/completions" 2>/dev/null || true
        n=$((n + 1))
        sleep 0.05
    done
    echo "$n" >"$WORK/vanished"
) &
VANISH=$!
PIDS+=($VANISH)

SAMPLES="$WORK/samples.csv"
echo "t,rss_kb,fds,threads,in_flight" >"$SAMPLES"
start=$SECONDS
while [ $((SECONDS - start)) -lt "$DURATION" ]; do
    sleep "$SAMPLE"
    kill -0 "$GW" 2>/dev/null || { tail -n 40 "$WORK/gateway.log" >&2; die "the gateway died during the soak"; }
    echo "$((SECONDS - start)),$(rss_kb),$(fds),$(threads),$(in_flight)" >>"$SAMPLES"
done
for p in "${LOADS[@]}" "$VANISH"; do wait "$p" || true; done
sleep 3
AFTER_FDS=$(fds)
AFTER_IN_FLIGHT=$(in_flight)
AFTER_RSS=$(rss_kb)
AFTER_THREADS=$(threads)
curl -sf "http://127.0.0.1:$MOCK_PORT/__stats" >"$WORK/mock-stats.json" || echo '{}' >"$WORK/mock-stats.json"

mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/soak-$(date -u +%Y%m%dT%H%M%SZ).md"
status=0
python3 - "$SAMPLES" "$WORK" "$DURATION" "$PROFILE" "$IDLE_RSS" "$IDLE_FDS" "$AFTER_RSS" "$AFTER_FDS" \
    "$AFTER_IN_FLIGHT" "$AFTER_THREADS" >"$REPORT" <<'PY' || status=$?
import csv, glob, json, os, platform, sys
samples, work, duration, profile, idle_rss, idle_fds, after_rss, after_fds, after_in_flight, after_threads = sys.argv[1:]
rows = [{k: int(float(v)) for k, v in r.items()} for r in csv.DictReader(open(samples))]
warm = max(1, len(rows) // 5)
steady = rows[warm:] or rows[-1:]
first = steady[0]["rss_kb"]
drift = max(abs(r["rss_kb"] - first) for r in steady) / first
checks = [
    (f"RSS within ±10 % after warm-up (first {first} kB, max drift {drift * 100:.1f} %)", drift <= 0.10),
    (f"no request left in flight after the load ({after_in_flight})", int(after_in_flight) == 0),
    (f"descriptors grow by at most 8 after warm-up ({steady[0]['fds']} to {max(r['fds'] for r in steady)})",
     max(r["fds"] for r in steady) - steady[0]["fds"] <= 8),
    (f"descriptors after the load no more than under it ({after_fds} vs {max(r['fds'] for r in steady)})",
     int(after_fds) <= max(r["fds"] for r in steady)),
]
loads = []
for f in sorted(glob.glob(os.path.join(work, "load-*.json"))):
    for line in open(f):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        loads.append(f"| {j.get('label')} | {j.get('concurrency')} | {j.get('requests')} | {j.get('errors')} |")
vanished = open(os.path.join(work, "vanished")).read().strip() if os.path.exists(os.path.join(work, "vanished")) else "?"
print(f"## Soak: {duration} s of mixed traffic with faults ({profile} build)\n")
print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}. Command: `bench/soak.sh --duration {duration}{' --debug' if profile == 'debug' else ''}`.\n")
print("| load | concurrency | requests | errors seen by the client |\n|---|---:|---:|---:|")
print("\n".join(loads))
print(f"\nClients that vanished mid-stream: {vanished}.\n")
totals = json.load(open(os.path.join(work, "mock-stats.json"))).get("totals", {})
print(f"Upstream (mock) totals: {totals.get('hits', '?')} calls, {totals.get('scripted_errors', '?')} scripted errors, "
      f"{totals.get('rate_limited', '?')} rate-limited, {totals.get('cancelled', '?')} cancelled by the gateway. The "
      "stalls and cut streams are scripted faults too; they count as calls.\n")
print(f"Gateway process: idle {idle_rss} kB RSS and {idle_fds} fds before the load; after it {after_rss} kB, {after_fds} fds, "
      f"{after_threads} threads, {after_in_flight} in flight.\n")
print("| t (s) | RSS (kB) | fds | threads | in flight |\n|---:|---:|---:|---:|---:|")
step = max(1, len(rows) // 24)
for r in rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else []):
    print(f"| {r['t']} | {r['rss_kb']} | {r['fds']} | {r['threads']} | {r['in_flight']} |")
print()
for text, ok in checks:
    print(f"- {'PASS' if ok else 'FAIL'}: {text}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
PY
cat "$REPORT"
log "report: $REPORT"
exit $status
