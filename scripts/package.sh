#!/usr/bin/env bash
# Builds the release archive of one target, as the release workflow publishes it and install.sh downloads it:
#   OUTDIR/freellmapi-<target>.tar.gz          freellmapi-<target>/{freellmapi, install.sh, README.md,
#                                              docker-compose.yml, deploy/, docs/}
#   OUTDIR/freellmapi-<target>.tar.gz.sha256   its SHA-256, in `sha256sum -c` format
# With SOURCE_DATE_EPOCH set, file times and ownership in the archive are fixed (same inputs, same archive).
#
# Usage: scripts/package.sh TARGET BINARY OUTDIR     e.g. scripts/package.sh x86_64-unknown-linux-gnu \
#                                                         target/x86_64-unknown-linux-gnu/release/freellmapi dist
set -euo pipefail
[ $# = 3 ] || {
  echo "usage: scripts/package.sh TARGET BINARY OUTDIR" >&2
  exit 2
}
TARGET=$1
BINARY=$2
OUT=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$BINARY" ] || {
  echo "not an executable: $BINARY" >&2
  exit 1
}
name=freellmapi-$TARGET
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name" "$OUT"
install -m 0755 "$BINARY" "$stage/$name/freellmapi"
install -m 0755 "$ROOT/install.sh" "$stage/$name/install.sh"
install -m 0644 "$ROOT/README.md" "$ROOT/docker-compose.yml" "$stage/$name/"
cp -R "$ROOT/deploy" "$ROOT/docs" "$stage/$name/"
reproducible=()
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
  reproducible=(--sort=name --owner=0 --group=0 --numeric-owner "--mtime=@$SOURCE_DATE_EPOCH")
fi
tar "${reproducible[@]}" -C "$stage" -cf - "$name" | gzip -n >"$OUT/$name.tar.gz"
(cd "$OUT" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "$OUT/$name.tar.gz"
