#!/usr/bin/env bash
# Regenerates bench/symbol-order.txt: the functions Ladder's server runs, which release builds link
# side by side so that fewer pages of code are mapped (bench/README.md, "Code layout").
#
#   sudo bench/symbol-order.sh            # builds both release variants, ~5 minutes
#   sudo bench/symbol-order.sh --no-build
#
# It runs compare.sh's Ladder workloads, for a few seconds each, on a release build whose binary is
# out of the page cache and with the disk's read-ahead off, so the server's present pages of code
# are the ones it ran on (`ladder-bench code-pages`). Needs root (read-ahead, the page map), nm, and
# a target directory on a block device (not tmpfs or overlay). Read-ahead is restored on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=1
case "${1:-}" in
    --no-build) BUILD=0 ;;
    "") ;;
    *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root: it turns the disk's read-ahead off and reads the server's page map"
for tool in cargo curl openssl nm lsblk findmnt; do command -v "$tool" >/dev/null || die "$tool is needed"; done

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$BUILD" = 1 ]; then
    # The list names the symbols of both builds of the ladder package alone (symbol names hash
    # the features of each crate, and a build of several packages unifies their dependencies').
    log "building ladder (release), then with bench-insecure-hashing, then ladder-bench"
    (cd "$ROOT" && cargo build --release --quiet -p ladder && cp "$TARGET/release/ladder" "$TARGET/ladder-default" \
        && cargo build --release --quiet --features bench-insecure-hashing -p ladder \
        && cargo build --release --quiet -p ladder-bench) || die "build failed"
fi
[ -x "$TARGET/ladder-default" ] || die "missing $TARGET/ladder-default (run without --no-build)"
DRIVER=$TARGET/release/ladder-bench

dev=$(findmnt -no SOURCE --target "$TARGET")
disk=$(lsblk -no PKNAME "$dev" 2>/dev/null | head -1)
RA=/sys/block/${disk:-$(basename "$dev")}/queue/read_ahead_kb
[ -w "$RA" ] || die "$TARGET is not on a block device whose read-ahead can be set ($dev)"
RA_WAS=$(cat "$RA")
WORK=$(mktemp -d "$TARGET/symbol-order.XXXXXX")
LADDER=$WORK/ladder
cp "$TARGET/release/ladder" "$LADDER"
PID=""
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi; echo "$RA_WAS" > "$RA"; rm -rf "$WORK"; }
trap cleanup EXIT

export LADDER_DATABASE__URL="sqlite://$WORK/ladder.db" LADDER_METRICS__BIND="" LADDER_LOGIN__MAX_FAILURES_PER_IP=1000000000
LADDER_SERVER_KEY=$(openssl rand 32 | base64 | tr '+/' '-_' | tr -d '=\n')
export LADDER_SERVER_KEY
CONFIG=(--config "$ROOT/config/ladder.toml")
ISSUER=http://127.0.0.1:7791
"$LADDER" "${CONFIG[@]}" migrate >/dev/null
add_users() { # prefix count insecure(true|false)
    for i in $(seq 1 "$2"); do
        printf 'pw-%s-12345678' "$1" | LADDER_SECURITY__BENCH_INSECURE_HASHING=$3 \
            "$LADDER" "${CONFIG[@]}" user add "$1-$i" --password-stdin >/dev/null
        echo "$1-$i:pw-$1-12345678"
    done > "$WORK/$1.txt"
}
log "preparing users and a client"
add_users fast 32 true; add_users prod 2 false; add_users step 200 true
json=$("$LADDER" "${CONFIG[@]}" client add --name bench --redirect-uri http://127.0.0.1:9/cb --json \
    --grant-type client_credentials --grant-type authorization_code --grant-type refresh_token)
ID=$(printf '%s' "$json" | sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p')
SECRET=$(printf '%s' "$json" | sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p')

start() { # the server, with its binary evicted from the page cache and read-ahead off
    sync "$LADDER"
    dd if="$LADDER" iflag=nocache count=0 status=none
    echo 0 > "$RA"
    "$LADDER" "${CONFIG[@]}" serve --bind 127.0.0.1:7791 --issuer "$ISSUER" >>"$WORK/ladder.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "$ISSUER/.well-known/openid-configuration" && return 0; sleep 0.2; done
    die "the server did not answer (see $WORK/ladder.log)"
}
drive() { # workload [extra args…]
    "$DRIVER" run --issuer "$ISSUER" --client-id="$ID" --client-secret="$SECRET" --workload "$1" --duration 3 \
        --concurrency 32 "${@:2}" >/dev/null || die "workload $1 failed"
}

start
"$DRIVER" enrol-totp --issuer "$ISSUER" --client-id="$ID" --client-secret="$SECRET" --users "$WORK/step.txt" \
    --out "$WORK/totp.jsonl" --concurrency 8 >/dev/null || die "TOTP enrolment failed"
kill "$PID"; wait "$PID" 2>/dev/null || true
log "running the workloads"
start
for w in discovery jwks client-credentials; do drive "$w"; done
for w in code-exchange refresh introspect userinfo login; do drive "$w" --users "$WORK/fast.txt"; done
drive stepup --totp-users "$WORK/totp.jsonl" --warmup 0
drive login --users "$WORK/prod.txt"
"$DRIVER" code-pages --pid "$PID" --binary "$LADDER" --also "$TARGET/ladder-default" > "$WORK/order.txt"
mv "$WORK/order.txt" "$ROOT/bench/symbol-order.txt"
log "wrote bench/symbol-order.txt ($(wc -l < "$ROOT/bench/symbol-order.txt") symbols); rebuild to use it"
