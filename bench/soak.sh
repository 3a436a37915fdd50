#!/usr/bin/env bash
# Soak (docs/RELIABILITY.md): a mixed workload on loopback for a bounded time —
# token issuance, introspection, userinfo, refresh rotation, the code flow, JWKS,
# discovery and password sign-in all at once — then checks that no request failed
# (every loadgen counts any non-2xx answer as an error, so no 5xx) and that the
# server's RSS did not grow by more than SOAK_MAX_GROWTH_MIB between the first
# sample after warm-up and the end.
#
# The warm-up (150 s) outlasts the longest per-flow state the mix leaves in the
# in-process cache (a redeemed code is remembered for the 120 s replay window), so
# the cache has reached its steady size when growth starts being counted: what
# grows after that is a leak, not the cache filling up.
#
#   bench/soak.sh                                  # SQLite, 600 s
#   SOAK_SECONDS=600 SOAK_BACKEND=postgres bench/soak.sh
#
# Loopback only: the server binds 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL=${SOAK_SECONDS:-600}
WARMUP=${SOAK_WARMUP_SECONDS:-150}
BACKEND=${SOAK_BACKEND:-sqlite}
MAX_GROWTH_MIB=${SOAK_MAX_GROWTH_MIB:-16}
PG_ADMIN_URL=${SOAK_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${SOAK_REDIS_URL:-redis://127.0.0.1:6379}
PASSWORD="soak password for tessera"
# scenario:concurrency — a mix shaped like a busy deployment, not a benchmark.
MIX=${SOAK_MIX:-"client_credentials:4 introspection:2 userinfo:2 refresh_token:4 authorization_code:2 jwks:2 discovery:1 password_sign_in:1"}

cargo build --release --locked --bin tessera --example loadgen >&2
BIN=target/release/tessera
LOADGEN=target/release/examples/loadgen

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "${db:-}" ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" >&2 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
env=(TESSERA_ISSUER="$base" TESSERA_BIND="127.0.0.1:$port" TESSERA_KEYS_DIR="$WORK/keys"
     TESSERA_LOG=warn TESSERA_LOGIN_MAX_FAILURES_PER_IP=100000
     # Each introspection/userinfo worker holds one access token for the whole
     # run; with the 5-minute default a longer soak would measure expiry.
     TESSERA_ACCESS_TOKEN_TTL=$(( SECONDS_TOTAL + 300 ))s)
case "$BACKEND" in
  sqlite) env+=(DATABASE_URL="sqlite://$WORK/soak.db?mode=rwc") ;;
  postgres)
    db="tessera_soak_$(date +%s)"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $db" >&2
    env+=(DATABASE_URL="${PG_ADMIN_URL%/*}/$db" REDIS_URL="$REDIS" TESSERA_CACHE_PREFIX="$db:") ;;
  *) echo "unknown backend $BACKEND" >&2; exit 2 ;;
esac
env "${env[@]}" "$BIN" migrate >&2
client=$(env "${env[@]}" "$BIN" client create --name soak --first-party --json --id-token-alg ES256 \
  --redirect-uri https://app.example/callback --scope "openid email offline_access" \
  --grant-type authorization_code --grant-type refresh_token --grant-type client_credentials)
client_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$client")
secret=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$client")
printf '%s' "$PASSWORD" | env "${env[@]}" "$BIN" user create --email soak@example.com --password-stdin >&2

env "${env[@]}" "$BIN" serve & PIDS+=($!)
server=${PIDS[-1]}
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$base/readyz" && break; sleep 0.1; done
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$server/status"; }

for entry in $MIX; do
  scenario=${entry%:*}; concurrency=${entry#*:}
  "$LOADGEN" --base "$base" --scenario "$scenario" --concurrency "$concurrency" \
    --seconds "$SECONDS_TOTAL" --client-id "$client_id" --client-secret "$secret" \
    --email soak@example.com --password "$PASSWORD" > "$WORK/$scenario.json" & PIDS+=($!)
done

samples="$WORK/rss.txt"
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt "$SECONDS_TOTAL" ]; do
  sleep 10
  kill -0 "$server" 2>/dev/null || { echo "the server died" >&2; exit 1; }
  echo "$(( $(date +%s) - start )) $(rss)" >> "$samples"
done
for pid in "${PIDS[@]:1}"; do wait "$pid" || true; done

python3 - "$WORK" "$samples" "$WARMUP" "$MAX_GROWTH_MIB" "$BACKEND" "$SECONDS_TOTAL" $MIX <<'PY'
import json, sys, os
work, samples, warmup, max_growth, backend, seconds = sys.argv[1:7]
mix = sys.argv[7:]
warmup, max_growth = int(warmup), float(max_growth)
ok = True
total_ops = total_errors = 0
print(f"soak: backend={backend} seconds={seconds}")
print(f"{'scenario':20} {'conc':>4} {'ops':>9} {'ops/s':>8} {'p99 ms':>8} {'errors':>6}")
for entry in mix:
    scenario, conc = entry.split(":")
    r = json.load(open(os.path.join(work, f"{scenario}.json")))
    total_ops += r["ops"]; total_errors += r["errors"]
    print(f"{scenario:20} {conc:>4} {r['ops']:9d} {r['ops_per_sec']:8.0f} {r['p99_ms']:8.2f} {r['errors']:6d}")
    if r["errors"]:
        ok = False
        print(f"    first error: {r['first_error']}")
rows = [tuple(map(int, l.split())) for l in open(samples)]
after_warmup = [kib for t, kib in rows if t >= warmup]
if len(after_warmup) < 2:
    sys.exit(f"no RSS samples after the {warmup} s warm-up: run longer (SOAK_SECONDS)")
first, last, peak = after_warmup[0] / 1024, after_warmup[-1] / 1024, max(k for _, k in rows) / 1024
growth = last - first
print(f"requests: {total_ops}, errors: {total_errors}")
print(f"RSS MiB: after warm-up {first:.1f}, end {last:.1f}, peak {peak:.1f}, growth {growth:+.1f} (bound {max_growth})")
print("samples (s, MiB): " + " ".join(f"{t}:{k/1024:.0f}" for t, k in rows))
if growth > max_growth:
    ok = False
    print("RSS grew beyond the bound")
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
