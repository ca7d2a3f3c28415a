#!/usr/bin/env bash
# Interop with an independent relying-party library: builds Ladder, starts it on a free port with a
# fresh SQLite database, registers a user and a client through the CLI, then runs the Node tests
# in this folder (panva's openid-client) against it. Needs cargo, node >= 20 and npm.
#
#   bash tests/interop/run.sh
#
# Uses the caller's CARGO_TARGET_DIR, if any. On failure, the end of Ladder's log is printed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

echo "building ladder"
cargo build --bin ladder </dev/null
target_dir="$(cargo metadata --format-version 1 --no-deps </dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
ladder="$target_dir/debug/ladder"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
port="$(free_port)"
rp_port="$(free_port)"

# Ladder is configured by environment variables only, as in a container.
export LADDER_DATABASE__URL="sqlite://$work/ladder.db"
export LADDER_SERVER__BIND="127.0.0.1:$port"
export LADDER_SERVER__ISSUER="http://localhost:$port"
LADDER_SERVER_KEY="$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64"))')"
export LADDER_SERVER_KEY
export LADDER_SERVER__WORKERS=2
# No metrics listener: its fixed port could clash with another Ladder on this machine.
export LADDER_METRICS__BIND=""

username=interop
password="interop-$(node -e 'console.log(require("crypto").randomBytes(9).toString("hex"))')"
redirect_uri="http://localhost:$rp_port/callback"
post_logout_uri="http://localhost:$rp_port/signed-out"

json_field() {
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[process.argv[1]]))' "$1"
}

"$ladder" --config config/ladder.toml migrate </dev/null >/dev/null
printf '%s' "$password" |
    "$ladder" --config config/ladder.toml user add "$username" --email "$username@example.com" --name "Interop Tester" --password-stdin --json >/dev/null
client_json="$("$ladder" --config config/ladder.toml client add --name "openid-client interop" \
    --redirect-uri "$redirect_uri" --post-logout-redirect-uri "$post_logout_uri" \
    --scope profile --scope email --auth-method client_secret_basic \
    --grant-type authorization_code --grant-type refresh_token --json </dev/null)"
client_id="$(printf '%s' "$client_json" | json_field client_id)"
client_secret="$(printf '%s' "$client_json" | json_field client_secret)"

echo "starting ladder at $LADDER_SERVER__ISSUER"
"$ladder" --config config/ladder.toml serve </dev/null >"$work/ladder.log" 2>&1 &
server_pid=$!
discovery="$LADDER_SERVER__ISSUER/.well-known/openid-configuration"
for _ in $(seq 1 100); do
    if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$discovery"; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "ladder exited during start-up:" >&2
        cat "$work/ladder.log" >&2
        exit 1
    fi
    sleep 0.2
done

cd "$here"
npm ci --no-audit --no-fund --prefer-offline --loglevel=error </dev/null
status=0
LADDER_ISSUER="$LADDER_SERVER__ISSUER" \
    INTEROP_CLIENT_ID="$client_id" INTEROP_CLIENT_SECRET="$client_secret" \
    INTEROP_REDIRECT_URI="$redirect_uri" INTEROP_POST_LOGOUT_URI="$post_logout_uri" \
    INTEROP_USERNAME="$username" INTEROP_PASSWORD="$password" \
    node --test --test-reporter=spec totp.test.mjs openid-client.test.mjs </dev/null || status=$?
if ((status != 0)); then
    echo "--- last lines of ladder's log ---" >&2
    tail -n 40 "$work/ladder.log" >&2
fi
exit "$status"
