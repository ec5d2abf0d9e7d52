#!/usr/bin/env bash
# Peak memory (VmHWM) of the real photo-worker binary processing N photos at
# once: by default three 7071x7071 16-bit RGBA PNGs of a few hundred KB each
# (400 MB of pixels each at 16 bits), the decompression bombs of issue 13.
#   scripts/peak_rss.sh [path/to/photo-worker]   (default target/debug/photo-worker)
# Env: N (3), SIDE (7071), DATABASE_URL (postgres://postgres:postgres@127.0.0.1:5432/test),
# REDIS_URL (redis://127.0.0.1:6379), and any PHOTO_*/PHOTOS_* variable for the worker.
set -euo pipefail
BIN="${1:-target/debug/photo-worker}"
N="${N:-3}"
SIDE="${SIDE:-7071}"
ADMIN_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable}"
DB="peak_rss_$$"
WORK="$(mktemp -d)"
DB_URL="${ADMIN_URL%%/test*}/$DB?sslmode=disable"
cleanup() {
  [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null

mkdir -p "$WORK/storage/photos"
python3 - "$WORK/storage/photos/big.png" "$SIDE" <<'PY'
import struct, sys, zlib
path, side = sys.argv[1], int(sys.argv[2])
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
row = b"\0" + bytes([0x80, 0x00, 0x90, 0x00, 0xa0, 0x00, 0xff, 0xff]) * side
z = zlib.compressobj(9)
body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)))
    f.write(chunk(b"IDAT", body))
    f.write(chunk(b"IEND", b""))
PY
SIZE=$(stat -c %s "$WORK/storage/photos/big.png")

env -i PATH="$PATH" HOME="$HOME" \
  $(env | grep -E '^(PHOTO_|PHOTOS_)' || true) \
  REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" RSQ_PREFIX="peakrss$$" \
  DATABASE_URL="$DB_URL" STORAGE_DIR="$WORK/storage" HEALTH_ADDR=127.0.0.1:0 \
  PHOTOS_JOB_TIMEOUT="${PHOTOS_JOB_TIMEOUT:-600s}" STORAGE_TEMP_MAX_AGE=20m \
  PHOTOS_RECONCILE_INTERVAL=1s PHOTOS_RECONCILE_AFTER=1s RUST_LOG=warn \
  "$BIN" >"$WORK/log" 2>&1 &
PID=$!
# The migrations have run once the photos table exists.
for _ in $(seq 600); do
  psql -qtA "$DB_URL" -c "SELECT 1 FROM photos LIMIT 1" >/dev/null 2>&1 && break
  kill -0 "$PID" || { cat "$WORK/log"; exit 1; }
  sleep 0.1
done
START=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
# Stored pending, never enqueued: the worker's reconciler enqueues them at once.
psql -q "$DB_URL" <<SQL >/dev/null
INSERT INTO photo_batches DEFAULT VALUES;
INSERT INTO photos (batch_id, storage_path, size_bytes, updated_at)
SELECT (SELECT max(id) FROM photo_batches), 'photos/big.png', $SIZE, now() - interval '1 hour'
FROM generate_series(1, $N);
SQL
T0=$(date +%s)
while :; do
  LEFT=$(psql -qtA "$DB_URL" -c "SELECT count(*) FROM photos WHERE processing_status IN ('pending','processing')")
  [[ "$LEFT" == 0 ]] && break
  kill -0 "$PID" 2>/dev/null || { echo "the worker died"; tail -5 "$WORK/log"; exit 1; }
  sleep 0.5
done
HWM=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
echo "photos=$N side=$SIDE file_bytes=$SIZE seconds=$(( $(date +%s) - T0 ))"
echo "rss_start_mb=$(( START / 1024 )) peak_rss_mb=$(( HWM / 1024 ))"
psql -qtA "$DB_URL" -c "SELECT processing_status, left(coalesce(processing_error, ''), 120), count(*) FROM photos GROUP BY 1, 2"
