#!/usr/bin/env bash
# Instructions per request of one scenario, counted by callgrind: deterministic,
# so a change can be judged on a machine too noisy for A/B rates
# (docs/PERFORMANCE.md, issue 25 step 3). Needs valgrind and wrk.
#
#   bench/profile.sh client_credentials          # SQLite, the release build
#   BENCH_PG=1 bench/profile.sh userinfo         # PostgreSQL + Redis
#   BENCH_TESSERA_BIN=/tmp/tessera-before bench/profile.sh jwks
#
# Scenarios: client_credentials jwks discovery userinfo introspection.
# Prints requests answered and the output file; read it with
#   callgrind_annotate --inclusive=yes FILE | less
# and divide a function's count by the requests.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:-client_credentials}
SECONDS_EACH=${BENCH_SECONDS:-15}
BIN=${BENCH_TESSERA_BIN:-target/release/tessera}
OUT=${BENCH_OUT:-/tmp/callgrind.$SCENARIO.out}
PG_ADMIN_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
[ -n "${BENCH_TESSERA_BIN:-}" ] || cargo build --release --locked --bin tessera >&2

WORK=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export TESSERA_ISSUER="$base" TESSERA_BIND="127.0.0.1:$port" TESSERA_WORKERS=1 \
  TESSERA_KEYS_DIR="$WORK/keys" DATABASE_URL="sqlite://$WORK/db?mode=rwc"
db=""
if [ -n "${BENCH_PG:-}" ]; then
  db="tessera_profile_$(date +%s)"
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $db" >&2
  export DATABASE_URL="${PG_ADMIN_URL%/*}/$db" REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379} \
    TESSERA_CACHE_PREFIX="$db:"
fi
vpid=""
cleanup() {
  [ -z "$vpid" ] || kill "$vpid" 2>/dev/null || true
  [ -z "$db" ] || { sleep 1; psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" >&2 || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" migrate >&2
client=$("$BIN" client create --name profile --first-party --json --redirect-uri https://app.example/cb \
  --scope "openid email offline_access" --grant-type authorization_code --grant-type refresh_token \
  --grant-type client_credentials --id-token-alg ES256)
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
password="profile password for tessera"
printf '%s' "$password" | "$BIN" user create --email profile@example.com --password-stdin >&2

valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" serve 2>"$WORK/server.log" &
vpid=$!
for _ in $(seq 1 300); do curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break; sleep 0.2; done
python3 bench/prepare.py "$base" "$(field "$client" client_id)" "$(field "$client" client_secret)" \
  profile@example.com "$password" https://app.example/cb 1 "$WORK" >&2
prepared() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/prepared.json" "$1"; }
export WRK_METHOD=GET WRK_BODY="" WRK_AUTHORIZATION="" WRK_COOKIE="" WRK_PIPELINE=1
case "$SCENARIO" in
  client_credentials) WRK_METHOD=POST WRK_BODY=grant_type=client_credentials WRK_AUTHORIZATION="$(prepared basic)"; path=/token ;;
  introspection) WRK_METHOD=POST WRK_BODY="token=$(prepared service_token)" WRK_AUTHORIZATION="$(prepared basic)"; path=/introspect ;;
  userinfo) WRK_AUTHORIZATION="Bearer $(prepared user_token)"; path=/userinfo ;;
  jwks) path=/.well-known/jwks.json ;;
  discovery) path=/.well-known/openid-configuration ;;
  *) echo "unknown scenario $SCENARIO" >&2; exit 2 ;;
esac
# Warm up, then count only the measured requests.
wrk -t1 -c4 -d2s -s bench/wrk/static.lua "$base$path" >/dev/null
callgrind_control -z "$vpid" >/dev/null
wrk -t1 -c4 -d"${SECONDS_EACH}s" -s bench/wrk/static.lua "$base$path" | grep -E "requests in|Non-2xx"
callgrind_control -d "$vpid" >/dev/null
echo "profile: $OUT.1 (callgrind numbers the dump)"
