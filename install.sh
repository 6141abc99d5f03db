#!/usr/bin/env bash
# FreeLLMAPI installer: installs the gateway, generates its encryption key, sets up the admin account, starts it,
# waits for /api/ping and prints the URL and the management commands. Run it again to upgrade: settings, key and
# data are kept, the binary (or image) is replaced and the service restarted.
#
#   bash install.sh                  Docker/Podman Compose when an engine answers, else the native binary
#   bash install.sh --docker         Compose, with docker-compose.yml beside this script
#   bash install.sh --native         the binary: a systemd service when run as root on a systemd machine,
#                                    else a background process managed by freellmapi-ctl
#   bash install.sh --uninstall      stop and remove the service and binary (settings and data are kept
#                                    unless --purge is given too)
#
# Options: --port N, --lan (HOST_BIND=0.0.0.0), --yes (no questions: a generated admin password is printed at the
# end), --prefix DIR and --data-dir DIR (everything under DIR, no root needed, no systemd), --from-source (cargo
# build --release in this checkout), --binary PATH (an existing binary: offline installs, tests),
# --version TAG (a release other than the latest). --help lists them.
#
# Without --binary or --from-source the binary comes from the GitHub release of FREELLMAPI_REPO (default
# freellmapi/freellmapi):
#   https://github.com/<repo>/releases/latest/download/freellmapi-<arch>-unknown-linux-gnu.tar.gz
#   https://github.com/<repo>/releases/download/<tag>/freellmapi-<arch>-unknown-linux-gnu.tar.gz   (--version)
# with its .sha256 beside it, checked before anything is installed (<arch>: x86_64 or aarch64).
# FREELLMAPI_DOWNLOAD_BASE=<url> takes both files from a mirror instead (https://, or file:///a/directory).
#
# The admin credentials come from ADMIN_USERNAME/ADMIN_PASSWORD in the environment when set, else from a prompt,
# else (--yes, or no terminal) they are generated. The password is written to the settings file (mode 0600) only
# until the first start has created the admin, then removed from it; a generated one is shown once, at the end of
# this script's output, and nowhere else. The encryption key is never printed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO="${FREELLMAPI_REPO:-freellmapi/freellmapi}"
SERVICE=freellmapi

MODE=auto
PORT_FLAG=""
LAN=0
YES=0
PREFIX=""
DATA_DIR_FLAG=""
FROM_SOURCE=0
BINARY=""
VERSION=latest
UNINSTALL=0
PURGE=0

# Whatever the exit: the terminal's echo comes back, and a half-fetched binary is removed.
TEMP_FILES=()
ECHO_OFF=0
on_exit() {
  [ "$ECHO_OFF" = 0 ] || stty echo 2>/dev/null || true
  [ "${#TEMP_FILES[@]}" = 0 ] || rm -rf "${TEMP_FILES[@]}"
}
trap on_exit EXIT

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
usage: install.sh [--docker | --native] [options]
       install.sh --uninstall [--purge] [--prefix DIR] [--data-dir DIR]

  --docker          install with Docker Compose (or Podman Compose) from docker-compose.yml beside this script
  --native          install the binary (systemd service when root on systemd, else a background process)
  --port N          listen on port N (default 3001)
  --lan             listen on every interface (HOST_BIND=0.0.0.0) instead of 127.0.0.1
  --yes, -y         ask nothing: generate what is not given (the admin password is printed once at the end)
  --prefix DIR      install under DIR: DIR/bin, DIR/etc, DIR/data (no root, no systemd);
                    with --docker: the directory of docker-compose.yml (default: this script's)
  --data-dir DIR    keep the database and key file in DIR
  --from-source     build the binary here with `cargo build --release --locked -p freellmapi`
  --binary PATH     install this binary instead of downloading one
  --version TAG     download release TAG instead of the latest
  --uninstall       stop and remove the service and binary; with --purge, also settings and data
  -h, --help        this help

Environment: ADMIN_USERNAME, ADMIN_PASSWORD (admin of the first start), ENCRYPTION_KEY (64 hex characters; generated
when unset), FREELLMAPI_REPO (GitHub repository of the releases), FREELLMAPI_DOWNLOAD_BASE (a mirror of the
release assets: https:// or file://), FREELLMAPI_IMAGE (image for --docker).
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --docker) MODE=docker ;;
    --native) MODE=native ;;
    --port)
      [ $# -ge 2 ] || die "--port needs a number"
      PORT_FLAG=$2
      shift
      ;;
    --port=*) PORT_FLAG=${1#--port=} ;;
    --lan) LAN=1 ;;
    --yes | -y) YES=1 ;;
    --prefix)
      [ $# -ge 2 ] || die "--prefix needs a directory"
      PREFIX=$2
      shift
      ;;
    --prefix=*) PREFIX=${1#--prefix=} ;;
    --data-dir)
      [ $# -ge 2 ] || die "--data-dir needs a directory"
      DATA_DIR_FLAG=$2
      shift
      ;;
    --data-dir=*) DATA_DIR_FLAG=${1#--data-dir=} ;;
    --from-source) FROM_SOURCE=1 ;;
    --binary)
      [ $# -ge 2 ] || die "--binary needs a path"
      BINARY=$2
      shift
      ;;
    --binary=*) BINARY=${1#--binary=} ;;
    --version)
      [ $# -ge 2 ] || die "--version needs a release tag"
      VERSION=$2
      shift
      ;;
    --version=*) VERSION=${1#--version=} ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

if [ -n "$PORT_FLAG" ]; then
  case "$PORT_FLAG" in
    '' | *[!0-9]*) die "--port must be a number from 1 to 65535" ;;
  esac
  [ "$PORT_FLAG" -ge 1 ] && [ "$PORT_FLAG" -le 65535 ] || die "--port must be a number from 1 to 65535"
fi
[ -z "$BINARY" ] || [ "$FROM_SOURCE" = 0 ] || die "--binary and --from-source exclude each other"

absolute() { # a path made absolute, without requiring that it exists
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(pwd)" "$1" ;;
  esac
}
[ -z "$PREFIX" ] || PREFIX=$(absolute "$PREFIX")
[ -z "$DATA_DIR_FLAG" ] || DATA_DIR_FLAG=$(absolute "$DATA_DIR_FLAG")
[ -z "$BINARY" ] || BINARY=$(absolute "$BINARY")

# ---------------------------------------------------------------------------------------------------------------
# Small helpers

random_hex() { # N bytes of randomness as 2N hex characters
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex "$1"
  else
    od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
    printf '\n'
  fi
}

random_password() { # 24 characters of [A-Za-z0-9_-]: 18 random bytes in URL-safe base64
  head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n='
  printf '\n'
}

env_quote() { # a value as systemd's EnvironmentFile and a POSIX shell both read it back
  case "$1" in
    *[!A-Za-z0-9._:/@%+=,-]*)
      local v=${1//\\/\\\\}
      v=${v//\"/\\\"}
      v=${v//\$/\\\$}
      v=${v//\`/\\\`}
      printf '"%s"' "$v"
      ;;
    *) printf '%s' "$1" ;;
  esac
}

env_get() { # env_get FILE KEY: the last value of KEY in FILE, unquoted (as written by this script)
  local line
  line=$(grep -E "^$2=" "$1" 2>/dev/null | tail -n 1) || true
  line=${line#"$2"=}
  line=${line#\"}
  printf '%s' "${line%\"}"
}

env_set() { # env_set FILE KEY VALUE: replaces KEY's line, or appends one
  local file=$1 key=$2 tmp
  tmp=$(mktemp "$file.XXXXXX")
  chmod 600 "$tmp"
  grep -vE "^$key=" "$file" >"$tmp" || true
  printf '%s=%s\n' "$key" "$(env_quote "$3")" >>"$tmp"
  mv -f "$tmp" "$file"
}

env_unset() { # env_unset FILE KEY
  local file=$1 tmp
  tmp=$(mktemp "$file.XXXXXX")
  chmod 600 "$tmp"
  grep -vE "^$2=" "$file" >"$tmp" || true
  mv -f "$tmp" "$file"
}

port_in_use() { # something accepts connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

engine() { # the container engine that answers, if any
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo docker
  elif command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then
    echo podman
  fi
}

compose_cmd() { # how to call Compose with the given engine
  if [ "$1" = docker ] && docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  elif [ "$1" = podman ] && podman compose version >/dev/null 2>&1; then
    echo "podman compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    echo docker-compose
  elif command -v podman-compose >/dev/null 2>&1; then
    echo podman-compose
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# Where things go

if [ "$MODE" = auto ]; then
  if [ -z "$PREFIX$DATA_DIR_FLAG$BINARY" ] && [ "$FROM_SOURCE" = 0 ] && [ -n "$(engine)" ] \
    && [ -f "$SCRIPT_DIR/docker-compose.yml" ]; then
    MODE=docker
  else
    MODE=native
  fi
fi

SYSTEMD=0
if [ "$MODE" = native ]; then
  if [ "$(id -u)" = 0 ] && have_systemd && [ -z "$PREFIX$DATA_DIR_FLAG" ]; then
    SYSTEMD=1
    BIN_DIR=/usr/local/bin
    ENV_FILE=/etc/freellmapi/freellmapi.env
    DATA_DIR=/var/lib/freellmapi
    UNIT_FILE=/etc/systemd/system/$SERVICE.service
  elif [ -n "$PREFIX" ]; then
    BIN_DIR=$PREFIX/bin
    ENV_FILE=$PREFIX/etc/freellmapi.env
    DATA_DIR=${DATA_DIR_FLAG:-$PREFIX/data}
  elif [ "$(id -u)" = 0 ]; then
    BIN_DIR=/usr/local/bin
    ENV_FILE=/etc/freellmapi/freellmapi.env
    DATA_DIR=${DATA_DIR_FLAG:-/var/lib/freellmapi}
  else
    BIN_DIR=$HOME/.local/bin
    ENV_FILE=${XDG_CONFIG_HOME:-$HOME/.config}/freellmapi/freellmapi.env
    DATA_DIR=${DATA_DIR_FLAG:-${XDG_DATA_HOME:-$HOME/.local/share}/freellmapi}
  fi
  BIN=$BIN_DIR/freellmapi
  CTL=$BIN_DIR/freellmapi-ctl
  PID_FILE=$DATA_DIR/freellmapi.pid
  LOG_FILE=$DATA_DIR/freellmapi.log
else
  COMPOSE_DIR=${PREFIX:-$SCRIPT_DIR}
  ENV_FILE=$COMPOSE_DIR/.env
  [ -z "$DATA_DIR_FLAG" ] || die "--data-dir is for --native; with Compose the data is in the volume freellmapi-data"
fi

# ---------------------------------------------------------------------------------------------------------------
# Uninstall

if [ "$UNINSTALL" = 1 ]; then
  if [ "$MODE" = docker ]; then
    COMPOSE=$(compose_cmd "$(engine)")
    [ -n "$COMPOSE" ] || die "no Docker or Podman Compose answers"
    if [ "$PURGE" = 1 ]; then
      (cd "$COMPOSE_DIR" && $COMPOSE down --volumes)
      rm -f "$ENV_FILE"
    else
      (cd "$COMPOSE_DIR" && $COMPOSE down)
      say "kept: $ENV_FILE and the volume freellmapi-data (--purge removes them)"
    fi
  elif [ "$SYSTEMD" = 1 ]; then
    systemctl disable --now "$SERVICE" 2>/dev/null || true
    rm -f "$UNIT_FILE" "$BIN"
    systemctl daemon-reload
    if [ "$PURGE" = 1 ]; then
      rm -rf /etc/freellmapi /var/lib/private/freellmapi /var/lib/freellmapi
    else
      say "kept: $ENV_FILE and /var/lib/private/freellmapi (--purge removes them)"
    fi
  else
    [ ! -x "$CTL" ] || "$CTL" stop || true
    rm -f "$BIN" "$CTL"
    if [ "$PURGE" = 1 ]; then
      rm -rf "$DATA_DIR"
      rm -f "$ENV_FILE"
    else
      say "kept: $ENV_FILE and $DATA_DIR (--purge removes them)"
    fi
  fi
  say "FreeLLMAPI uninstalled."
  exit 0
fi

# ---------------------------------------------------------------------------------------------------------------
# Settings: kept on upgrade, created on the first install

UPGRADE=0
[ ! -f "$ENV_FILE" ] || UPGRADE=1

if [ "$UPGRADE" = 1 ]; then
  PORT=${PORT_FLAG:-$(env_get "$ENV_FILE" PORT)}
  PORT=${PORT:-3001}
  HOST_BIND=$(env_get "$ENV_FILE" HOST_BIND)
  [ "$LAN" = 0 ] || HOST_BIND=0.0.0.0
  HOST_BIND=${HOST_BIND:-127.0.0.1}
else
  PORT=${PORT_FLAG:-3001}
  HOST_BIND=127.0.0.1
  [ "$LAN" = 0 ] || HOST_BIND=0.0.0.0
fi

GENERATED_PASSWORD=""
ADMIN_USER=""
ADMIN_PASS=""
ask_credentials() {
  ADMIN_USER=${ADMIN_USERNAME:-}
  ADMIN_PASS=${ADMIN_PASSWORD:-}
  if [ -z "$ADMIN_PASS" ] && [ "$YES" = 0 ] && [ -t 0 ]; then
    local answer confirm
    printf 'Admin username [%s]: ' "${ADMIN_USER:-admin}"
    read -r answer
    ADMIN_USER=${answer:-${ADMIN_USER:-admin}}
    # Echo stays off for the whole exchange (not per prompt), so fast typing is never shown either.
    ECHO_OFF=1
    stty -echo 2>/dev/null || true
    while :; do
      printf 'Admin password (at least 8 characters; empty: generate one): '
      read -r answer || answer=""
      printf '\n'
      if [ -z "$answer" ]; then
        break
      fi
      if [ "${#answer}" -lt 8 ]; then
        say "  too short"
        continue
      fi
      printf 'Again: '
      read -r confirm || confirm=""
      printf '\n'
      if [ "$answer" = "$confirm" ]; then
        ADMIN_PASS=$answer
        break
      fi
      say "  the two passwords differ"
    done
    stty echo 2>/dev/null || true
    ECHO_OFF=0
  fi
  ADMIN_USER=${ADMIN_USER:-admin}
  if [ -z "$ADMIN_PASS" ]; then
    ADMIN_PASS=$(random_password)
    GENERATED_PASSWORD=$ADMIN_PASS
  fi
  [ "${#ADMIN_PASS}" -ge 8 ] || die "ADMIN_PASSWORD must be at least 8 characters"
  case "$ADMIN_PASS$ADMIN_USER" in
    *$'\n'*) die "the admin username and password cannot contain a line break" ;;
  esac
}

# Writes the settings file of a first install (mode 0600 from the start).
write_settings() {
  local key=${ENCRYPTION_KEY:-} data_dir_line=$1
  local dir
  dir=$(dirname "$ENV_FILE")
  mkdir -p "$dir"
  if [ -n "$key" ]; then
    case "$key" in
      *[!0-9a-fA-F]*) die "ENCRYPTION_KEY must be 64 hex characters" ;;
    esac
    [ "${#key}" = 64 ] || die "ENCRYPTION_KEY must be 64 hex characters"
  elif [ -f "${DATA_DIR:-/nonexistent}/encryption.key" ]; then
    key="" # the data directory has its key file: keep using it
  else
    key=$(random_hex 32)
  fi
  (
    umask 077
    {
      printf '# FreeLLMAPI settings, written by install.sh on %s. Every variable: docs/configuration.md.\n' "$(date -u +%Y-%m-%d)"
      printf '# Mode 0600: it holds the encryption key. Back it up with the database.\n'
      printf '# ADMIN_USERNAME/ADMIN_PASSWORD only create the admin on the first start; manage accounts in the dashboard.\n'
      printf 'PORT=%s\n' "$PORT"
      printf 'HOST_BIND=%s\n' "$HOST_BIND"
      [ -z "$data_dir_line" ] || printf 'DATA_DIR=%s\n' "$(env_quote "$data_dir_line")"
      if [ -n "$key" ]; then
        printf 'ENCRYPTION_KEY=%s\n' "$key"
      else
        printf '# ENCRYPTION_KEY: read from %s/encryption.key\n' "$DATA_DIR"
      fi
      printf 'ADMIN_USERNAME=%s\n' "$(env_quote "$ADMIN_USER")"
      # Removed again once the first start has created the admin (the gateway ignores it from then on).
      printf 'ADMIN_PASSWORD=%s\n' "$(env_quote "$ADMIN_PASS")"
    } >"$ENV_FILE.new"
  )
  chmod 600 "$ENV_FILE.new"
  mv -f "$ENV_FILE.new" "$ENV_FILE"
}

print_manage() {
  say ""
  say "Manage it:"
  while [ $# -ge 2 ]; do
    printf '  %-10s %s\n' "$1" "$2"
    shift 2
  done
}

# ---------------------------------------------------------------------------------------------------------------
# Docker / Podman Compose

install_docker() {
  local eng compose
  eng=$(engine)
  [ -n "$eng" ] || die "no Docker or Podman engine answers (docker info / podman info); use --native"
  compose=$(compose_cmd "$eng")
  [ -n "$compose" ] || die "$eng answers but Compose is missing (docker compose plugin, podman compose or docker-compose)"
  [ -f "$COMPOSE_DIR/docker-compose.yml" ] || die "no docker-compose.yml in $COMPOSE_DIR (run this script from a FreeLLMAPI checkout or release archive)"

  if [ "$UPGRADE" = 1 ]; then
    step "Keeping the settings in $ENV_FILE"
    [ -z "$PORT_FLAG" ] || env_set "$ENV_FILE" PORT "$PORT"
    [ "$LAN" = 0 ] || env_set "$ENV_FILE" HOST_BIND 0.0.0.0
  else
    ask_credentials
    step "Writing $ENV_FILE (mode 0600)"
    write_settings ""
  fi
  if ! grep -q '^FREELLMAPI_IMAGE=' "$ENV_FILE" && [ -n "${FREELLMAPI_IMAGE:-}" ]; then
    env_set "$ENV_FILE" FREELLMAPI_IMAGE "$FREELLMAPI_IMAGE"
  fi

  cd "$COMPOSE_DIR"
  if [ "$FROM_SOURCE" = 1 ]; then
    step "Building the image from this checkout"
    $compose build gateway
  else
    step "Pulling the image"
    $compose pull gateway || {
      [ -f Dockerfile ] || die "the image could not be pulled and there is no Dockerfile to build it"
      warn "pull failed: building the image from this checkout instead"
      $compose build gateway
    }
  fi
  step "Starting the gateway"
  $compose up -d gateway
  step "Waiting for /api/ping"
  local i
  for i in $(seq 1 60); do
    if $compose exec -T gateway /usr/local/bin/freellmapi healthcheck >/dev/null 2>&1; then
      break
    fi
    [ "$i" -lt 60 ] || {
      $compose logs --tail 40 gateway >&2 || true
      die "the gateway did not answer /api/ping within 60 s (its log is above)"
    }
    sleep 1
  done
  [ "$UPGRADE" = 1 ] || env_unset "$ENV_FILE" ADMIN_PASSWORD
  finish_message "$compose exec gateway /usr/local/bin/freellmapi"
  print_manage \
    status "cd $COMPOSE_DIR && $compose ps" \
    logs "cd $COMPOSE_DIR && $compose logs -f gateway" \
    stop "cd $COMPOSE_DIR && $compose stop" \
    start "cd $COMPOSE_DIR && $compose up -d gateway" \
    upgrade "cd $COMPOSE_DIR && $compose pull && $compose up -d   (or run this script again)" \
    uninstall "bash $SCRIPT_DIR/install.sh --docker --uninstall   (--purge also deletes the data volume)"
}

# ---------------------------------------------------------------------------------------------------------------
# Native: the binary

fetch_binary() { # puts the binary to install at $1
  local out=$1
  if [ -n "$BINARY" ]; then
    [ -x "$BINARY" ] || die "--binary $BINARY is not an executable file"
    cp "$BINARY" "$out"
  elif [ "$FROM_SOURCE" = 1 ]; then
    command -v cargo >/dev/null 2>&1 || die "--from-source needs cargo (https://rustup.rs)"
    [ -f "$SCRIPT_DIR/Cargo.toml" ] || die "--from-source needs this script inside a FreeLLMAPI checkout"
    step "Building from source: cargo build --release --locked -p freellmapi"
    (cd "$SCRIPT_DIR" && cargo build --release --locked -p freellmapi)
    cp "${CARGO_TARGET_DIR:-$SCRIPT_DIR/target}/release/freellmapi" "$out"
  else
    local arch asset base tmp
    case "$(uname -m)" in
      x86_64 | amd64) arch=x86_64 ;;
      aarch64 | arm64) arch=aarch64 ;;
      *) die "no release binary for $(uname -m): use --from-source" ;;
    esac
    [ "$(uname -s)" = Linux ] || die "release binaries are for Linux: use --from-source"
    command -v curl >/dev/null 2>&1 || die "downloading needs curl (or use --binary / --from-source)"
    asset=freellmapi-$arch-unknown-linux-gnu.tar.gz
    local proto='=https'
    if [ -n "${FREELLMAPI_DOWNLOAD_BASE:-}" ]; then
      base=${FREELLMAPI_DOWNLOAD_BASE%/} # a mirror of the release assets (https://, or file:// on disk)
      case "$base" in file://*) proto='=file' ;; esac
    elif [ "$VERSION" = latest ]; then
      base=https://github.com/$REPO/releases/latest/download
    else
      base=https://github.com/$REPO/releases/download/$VERSION
    fi
    tmp=$(mktemp -d)
    TEMP_FILES+=("$tmp")
    step "Downloading $base/$asset"
    curl -fsSL --proto "$proto" -o "$tmp/$asset" "$base/$asset" || die "download failed: $base/$asset"
    curl -fsSL --proto "$proto" -o "$tmp/$asset.sha256" "$base/$asset.sha256" || die "download failed: $base/$asset.sha256"
    (cd "$tmp" && sha256sum -c "$asset.sha256" >/dev/null) || die "checksum mismatch for $asset: nothing was installed"
    tar -xzf "$tmp/$asset" -C "$tmp"
    cp "$tmp/freellmapi-$arch-unknown-linux-gnu/freellmapi" "$out"
    rm -rf "$tmp"
  fi
  chmod 755 "$out"
  "$out" --version >/dev/null 2>&1 || die "the binary does not run on this machine: $("$out" --version 2>&1 | head -n 1)"
}

# The companion script for a background-process install: every path is fixed at install time.
write_ctl() {
  local tmp=$CTL.new
  {
    printf '#!/usr/bin/env bash\n'
    printf '# freellmapi-ctl: manages the FreeLLMAPI gateway that install.sh started as a background process.\n'
    printf '# Written by install.sh; run it again to upgrade (it rewrites this file).\n'
    printf 'BIN=%q\nENV_FILE=%q\nDATA_DIR=%q\nPID_FILE=%q\nLOG_FILE=%q\nCTL=%q\n' \
      "$BIN" "$ENV_FILE" "$DATA_DIR" "$PID_FILE" "$LOG_FILE" "$CTL"
    cat <<'CTL'
set -euo pipefail

usage() {
  cat <<EOF
usage: freellmapi-ctl COMMAND
  start | stop | restart   the gateway (stop drains in-flight requests for up to SHUTDOWN_DRAIN_TIMEOUT_MS)
  status                   running or not, and /api/ping
  logs [-f]                the last 100 log lines (-f: follow)
  version                  the installed binary's version
  run ARGS...              the binary with the installed settings, e.g. \`freellmapi-ctl run migrate-from-old\`
  uninstall [--purge]      stop, remove the binary and this script (--purge: also $ENV_FILE and $DATA_DIR)
EOF
}

pid() { cat "$PID_FILE" 2>/dev/null || true; }

running() { # the pid file names a live process running our binary
  local p exe
  p=$(pid)
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  if [ -e "/proc/$p/exe" ]; then
    exe=$(readlink "/proc/$p/exe" 2>/dev/null || true)
    case "$exe" in "$BIN" | "$BIN (deleted)") return 0 ;; *) return 1 ;; esac
  fi
  return 0
}

with_settings() { # runs a command with the settings file's variables exported
  (
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
    exec "$@"
  )
}

start() {
  if running; then
    echo "already running (pid $(pid))"
    return 0
  fi
  mkdir -p "$DATA_DIR"
  rm -f "$PID_FILE"
  local detach=()
  if command -v setsid >/dev/null 2>&1; then detach=(setsid); fi
  # The process writes its own pid (setsid may fork), ignores the terminal's hang-up and execs the binary.
  # shellcheck disable=SC2016 # expanded by the inner bash
  "${detach[@]}" bash -c 'trap "" HUP; set -a; . "$1"; set +a; echo $$ >"$2"; exec "$3" serve' \
    freellmapi "$ENV_FILE" "$PID_FILE" "$BIN" </dev/null >>"$LOG_FILE" 2>&1 &
  for _ in $(seq 1 50); do
    [ -s "$PID_FILE" ] && break
    sleep 0.1
  done
  echo "started (pid $(pid)); log: $LOG_FILE"
}

stop() {
  if ! running; then
    rm -f "$PID_FILE"
    echo "not running"
    return 0
  fi
  local p
  p=$(pid)
  kill -TERM "$p"
  # The drain (SHUTDOWN_DRAIN_TIMEOUT_MS, 30 s by default) and the history flush, then a margin.
  for _ in $(seq 1 450); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$p" 2>/dev/null; then
    echo "still running after 45 s: killing it" >&2
    kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  echo "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart)
    stop
    start
    ;;
  status)
    if running; then
      echo "running (pid $(pid))"
      with_settings "$BIN" healthcheck
    else
      echo "stopped"
      exit 3
    fi
    ;;
  logs)
    if [ "${2:-}" = "-f" ]; then exec tail -n 100 -f "$LOG_FILE"; fi
    tail -n 100 "$LOG_FILE"
    ;;
  version) "$BIN" --version ;;
  run)
    shift
    with_settings "$BIN" "$@"
    ;;
  uninstall)
    stop
    rm -f "$BIN"
    if [ "${2:-}" = "--purge" ]; then
      rm -rf "$DATA_DIR"
      rm -f "$ENV_FILE"
    else
      echo "kept: $ENV_FILE and $DATA_DIR (uninstall --purge removes them)"
    fi
    rm -f "$CTL"
    echo "FreeLLMAPI uninstalled."
    ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
CTL
  } >"$tmp"
  chmod 755 "$tmp"
  mv -f "$tmp" "$CTL"
}

unit_source() { # the systemd unit: from this checkout or release archive, else from the release's tag
  if [ -f "$SCRIPT_DIR/deploy/systemd/freellmapi.service" ]; then
    cat "$SCRIPT_DIR/deploy/systemd/freellmapi.service"
  else
    local ref=main
    [ "$VERSION" = latest ] || ref=$VERSION
    curl -fsSL --proto '=https' "https://raw.githubusercontent.com/$REPO/$ref/deploy/systemd/freellmapi.service"
  fi
}

wait_for_ping() { # wait_for_ping IS_ALIVE_CMD...: polls /api/ping for up to 60 s, while IS_ALIVE_CMD succeeds
  local i host=$HOST_BIND
  for i in $(seq 1 120); do
    if "$BIN" healthcheck --port "$PORT" --host "$host" --timeout-ms 1000 >/dev/null 2>&1; then
      return 0
    fi
    if ! "$@"; then
      return 1
    fi
    sleep 0.5
  done
  return 1
}

finish_message() { # finish_message HOW_TO_RUN_THE_BINARY
  local shown=$HOST_BIND url
  if [ "$HOST_BIND" = 0.0.0.0 ]; then
    shown=127.0.0.1
    local lan
    lan=$(hostname -I 2>/dev/null | awk '{print $1}') || true
    [ -z "$lan" ] || shown=$lan
  fi
  url="http://$shown:$PORT"
  say ""
  if [ "$UPGRADE" = 1 ]; then
    say "FreeLLMAPI is upgraded and running: $url/"
  else
    say "FreeLLMAPI is running: $url/"
  fi
  say "  OpenAI-compatible endpoint: $url/v1 (mint a gateway key in the dashboard)"
  if [ "$UPGRADE" = 0 ]; then
    say "  Admin user: $ADMIN_USER"
    if [ -n "$GENERATED_PASSWORD" ]; then
      say "  Admin password (generated, shown only this once and stored nowhere in clear): $GENERATED_PASSWORD"
    else
      say "  Admin password: the one you gave (removed from $ENV_FILE now that the admin exists)"
    fi
  fi
  say "  Settings: $ENV_FILE (mode 0600; holds the encryption key: back it up with the data)"
  if [ "$MODE" = native ] && "$BIN" migrate-from-old --help >/dev/null 2>&1; then
    say ""
    say "Coming from the Node.js FreeLLMAPI? Import its provider keys (its database is only read):"
    say "  $1 migrate-from-old [PATH-OF-THE-OLD-INSTALL]"
  fi
}

service_alive() { # the systemd service is starting or running (not failed, not stopped)
  case "$(systemctl show -p ActiveState --value "$SERVICE" 2>/dev/null)" in
    active | activating | reloading) return 0 ;;
    *) return 1 ;;
  esac
}

process_alive() { # the background process named by the pid file lives
  local p
  p=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null
}

install_native() {
  local staged
  if [ "$UPGRADE" = 0 ] && port_in_use "$PORT"; then
    die "port $PORT is already in use on this machine: choose another with --port"
  fi
  if [ "$UPGRADE" = 0 ] && [ -z "${ENCRYPTION_KEY:-}" ] && [ -f "$DATA_DIR/freellmapi.db" ] \
    && [ ! -f "$DATA_DIR/encryption.key" ]; then
    die "$DATA_DIR already holds a database but there is no $ENV_FILE: set ENCRYPTION_KEY to that database's key (or restore the settings file)"
  fi
  mkdir -p "$BIN_DIR"
  staged=$(mktemp "$BIN_DIR/.freellmapi.XXXXXX")
  TEMP_FILES+=("$staged")
  fetch_binary "$staged"
  step "Installing $("$staged" --version) as $BIN"

  if [ "$UPGRADE" = 1 ]; then
    step "Keeping the settings in $ENV_FILE"
    [ -z "$PORT_FLAG" ] || env_set "$ENV_FILE" PORT "$PORT"
    [ "$LAN" = 0 ] || env_set "$ENV_FILE" HOST_BIND 0.0.0.0
  else
    ask_credentials
    step "Writing $ENV_FILE (mode 0600)"
    if [ "$SYSTEMD" = 1 ]; then write_settings ""; else write_settings "$DATA_DIR"; fi
  fi
  # A rename: a running old binary keeps its file until it exits.
  mv -f "$staged" "$BIN"

  if [ "$SYSTEMD" = 1 ]; then
    step "Installing the systemd unit $UNIT_FILE"
    unit_source >"$UNIT_FILE.new"
    mv -f "$UNIT_FILE.new" "$UNIT_FILE"
    systemctl daemon-reload
    systemctl enable "$SERVICE" >/dev/null 2>&1
    step "Starting the service (restart drains the old process first)"
    systemctl restart "$SERVICE"
    step "Waiting for /api/ping"
    if ! wait_for_ping service_alive; then
      journalctl -u "$SERVICE" -n 40 --no-pager >&2 || true
      die "the service did not answer /api/ping within 60 s (its journal is above)"
    fi
  else
    mkdir -p "$DATA_DIR"
    chmod 700 "$DATA_DIR"
    write_ctl
    step "Starting the gateway in the background (log: $LOG_FILE)"
    if [ "$UPGRADE" = 1 ]; then "$CTL" restart >/dev/null; else "$CTL" start >/dev/null; fi
    step "Waiting for /api/ping"
    if ! wait_for_ping process_alive; then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "the gateway did not answer /api/ping within 60 s (its log is above)"
    fi
  fi
  [ "$UPGRADE" = 1 ] || env_unset "$ENV_FILE" ADMIN_PASSWORD

  if [ "$SYSTEMD" = 1 ]; then
    finish_message "systemd-run --wait --pty -p DynamicUser=yes -p StateDirectory=freellmapi -p EnvironmentFile=$ENV_FILE -E DATA_DIR=$DATA_DIR $BIN"
    print_manage \
      status "systemctl status $SERVICE" \
      logs "journalctl -u $SERVICE -f" \
      stop "systemctl stop $SERVICE" \
      start "systemctl start $SERVICE" \
      upgrade "run this script again (keeps settings and data; restarts after a drain)" \
      uninstall "bash install.sh --uninstall   (--purge also deletes settings and data)"
  else
    finish_message "$CTL run"
    print_manage \
      status "$CTL status" \
      logs "$CTL logs -f" \
      stop "$CTL stop" \
      start "$CTL start" \
      upgrade "run this script again with the same --prefix/--data-dir (keeps settings and data)" \
      uninstall "$CTL uninstall   (--purge also deletes settings and data)"
    say "  (a background process does not come back after a reboot; on a systemd machine, install as root for a service)"
  fi
}

if [ "$MODE" = docker ]; then
  install_docker
else
  install_native
fi
