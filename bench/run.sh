#!/usr/bin/env bash
# The load benchmark (docs/PERFORMANCE.md): builds release, starts Tessera on the
# embedded defaults (SQLite, in-process cache) and then on PostgreSQL + Redis,
# seeds a client and a user, and drives every scenario from a second process on
# loopback at a fixed concurrency for a fixed time. In the same run it measures a
# minimal actix-web hello-world on the same worker count, and prints each figure
# also as a ratio to that ceiling, so results survive a noisy machine.
#
#   bench/run.sh                         # 1 worker, 10 s per scenario, both backends
#   BENCH_WORKERS=2 bench/run.sh         # the machine total
#   BENCH_SECONDS=2 BENCH_BACKENDS=sqlite bench/run.sh   # a quick check
#   BENCH_TESSERA_BIN=/tmp/tessera-before bench/run.sh   # an earlier build
#
# Loopback only: every server binds 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${BENCH_SECONDS:-10}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
WORKERS=${BENCH_WORKERS:-1}
BACKENDS=${BENCH_BACKENDS:-"sqlite postgres"}
# A scenario named `name:rs256` runs `name` with a client that takes the OIDC
# default RS256 id_tokens; every other scenario uses an ES256 client (see
# docs/PERFORMANCE.md: one RSA-2048 signature costs as much as 28 ES256 ones).
SCENARIOS=${BENCH_SCENARIOS:-"jwks discovery client_credentials introspection userinfo refresh_token refresh_token:rs256 authorization_code authorization_code:rs256 password_sign_in"}
PG_ADMIN_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# Connection parameters for the server only, e.g. BENCH_PG_PARAMS=sslmode=disable.
PG_PARAMS=${BENCH_PG_PARAMS:-}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
PASSWORD="bench password for tessera"

cargo build --release --locked --bin tessera --example loadgen --example hello >&2
# BENCH_TESSERA_BIN measures another build of the server (say, the commit before a
# change) against the same ceiling, scripts and load generator.
BIN=${BENCH_TESSERA_BIN:-target/release/tessera}
LOADGEN=target/release/examples/loadgen
HELLO=target/release/examples/hello

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# With one worker, the server gets core 0 and the load generator core 1.
server_cpus="0"; load_cpus="1"
if [ "$WORKERS" -gt 1 ] || [ "$(nproc)" -lt 2 ]; then server_cpus="0-$(($(nproc) - 1))"; load_cpus="$server_cpus"; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" && return 0; sleep 0.1; done; echo "never came up: $1" >&2; exit 1; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
record() { # label scenario json [rss_kib]
  python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["backend"]=sys.argv[1]; d["scenario"]=sys.argv[2]; d["rss_kib"]=int(sys.argv[4] or 0); print(json.dumps(d))' "$1" "$2" "$3" "${4:-0}" >> "$RESULTS"
}
load() { taskset -c "$load_cpus" "$LOADGEN" --concurrency "$CONCURRENCY" --seconds "$SECONDS_EACH" "$@"; }

# The ceiling.
port=$(free_port)
taskset -c "$server_cpus" "$HELLO" "127.0.0.1:$port" "$WORKERS" & PIDS+=($!)
wait_for "http://127.0.0.1:$port/"
record ceiling hello "$(load --base "http://127.0.0.1:$port" --scenario hello --cpu "server=${PIDS[-1]}")" "$(kib "${PIDS[-1]}" VmHWM)"
kill "${PIDS[-1]}"

for backend in $BACKENDS; do
  port=$(free_port)
  base="http://127.0.0.1:$port"
  env=(TESSERA_ISSUER="$base" TESSERA_BIND="127.0.0.1:$port" TESSERA_WORKERS="$WORKERS"
       TESSERA_KEYS_DIR="$WORK/keys-$backend" TESSERA_LOG=warn
       TESSERA_LOGIN_MAX_FAILURES_PER_IP=100000)
  case "$backend" in
    sqlite) env+=(DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc") ;;
    postgres)
      db="tessera_bench_$(date +%s)"
      psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $db" >&2
      env+=(DATABASE_URL="${PG_ADMIN_URL%/*}/$db${PG_PARAMS:+?$PG_PARAMS}" REDIS_URL="$REDIS" TESSERA_CACHE_PREFIX="$db:") ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
  env "${env[@]}" "$BIN" migrate >&2
  declare -A client_id secret
  for alg in ES256 RS256; do
    client=$(env "${env[@]}" "$BIN" client create --name "bench-$alg" --first-party --json \
      --redirect-uri https://app.example/callback --scope "openid email offline_access" \
      --grant-type authorization_code --grant-type refresh_token --grant-type client_credentials \
      --id-token-alg "$alg")
    client_id[$alg]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$client")
    secret[$alg]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$client")
  done
  printf '%s' "$PASSWORD" | env "${env[@]}" "$BIN" user create --email bench@example.com --password-stdin >&2

  env "${env[@]}" taskset -c "$server_cpus" "$BIN" serve & PIDS+=($!)
  pid=${PIDS[-1]}
  wait_for "$base/readyz"
  sleep 1
  record "$backend" idle '{"scenario":"idle"}' "$(kib "$pid" VmRSS)"
  for scenario in $SCENARIOS; do
    alg=ES256
    case "$scenario" in *:rs256) alg=RS256 ;; esac
    # CPU per operation of each process taking part (docs/PERFORMANCE.md).
    cpu="server=$pid"
    if [ "$backend" = postgres ]; then cpu+=";db=postgres;cache=redis-server"; fi
    out=$(load --base "$base" --scenario "${scenario%:rs256}" \
      --client-id "${client_id[$alg]}" --client-secret "${secret[$alg]}" \
      --email bench@example.com --password "$PASSWORD" --cpu "$cpu")
    record "$backend" "$scenario" "$out" "$(kib "$pid" VmRSS)"
  done
  record "$backend" peak '{"scenario":"peak"}' "$(kib "$pid" VmHWM)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE $db" >&2 || true; fi
done

python3 - "$RESULTS" "$WORKERS" "$CONCURRENCY" "$SECONDS_EACH" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ceiling = next(r for r in rows if r["scenario"] == "hello")
top = ceiling["ops_per_sec"]
print(f"workers={sys.argv[2]} concurrency={sys.argv[3]} seconds={sys.argv[4]}")
print(f"{'backend':9} {'scenario':24} {'ops/s':>9} {'vs hello':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'RSS MiB':>7}  CPU µs/op")
for r in rows:
    rss = r.get("rss_kib", 0) / 1024
    if "ops_per_sec" not in r:
        print(f"{r['backend']:9} {r['scenario']:24} {'':>9} {'':>8} {'':>7} {'':>7} {'':>6} {rss:7.1f}")
        continue
    print(f"{r['backend']:9} {r['scenario']:24} {r['ops_per_sec']:9.0f} {r['ops_per_sec'] / top:8.1%} "
          f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['errors']:6d} {rss:7.1f}  "
          + " ".join(f"{k} {v:.0f}" for k, v in r.get("cpu_us_per_op", {}).items()))
    if r.get("first_error"):
        print(f"    first error: {r['first_error']}")
PY
