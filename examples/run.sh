#!/usr/bin/env bash
# Runs the example clients (python/, node/) against a standalone Switchboard
# of their own, as an integrator would: stubs generated from proto/ with each
# language's usual tools, pinned dependencies, a real server on a free port.
# Each must log in, see its message arrive live and find it in history; the
# server's webhook for an offline recipient must reach the Python endpoint
# (webhook_receiver.py) and pass Standard Webhooks' own verifier.
#
#   examples/run.sh            (uses $SWITCHBOARD_BIN or the debug build)
#
# The Python venv lives in ${SWITCHBOARD_CACHE:-~/.cache/switchboard}.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
bin=${SWITCHBOARD_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/switchboard}
[[ -x "$bin" ]] || { echo "examples: no switchboard binary at $bin (cargo build -p switchboard-server)" >&2; exit 1; }

say() { printf 'examples: %s\n' "$*"; }

work=$(mktemp -d)
server_pid=
hook_pid=
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [[ -n "$hook_pid" ]] && kill "$hook_pid" 2>/dev/null && wait "$hook_pid" 2>/dev/null
  rm -rf -- "$work"
}
trap cleanup EXIT

# --- Python: grpcio + grpc_tools.protoc ---------------------------------------
venv="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/examples-python-venv"
stamp="$venv/.requirements"
if ! [[ -x "$venv/bin/python" && -f "$stamp" ]] || ! cmp -s "$stamp" "$here/python/requirements.txt"; then
  say "installing $(grep -v '^#' "$here/python/requirements.txt" | tr '\n' ' ')into $venv"
  rm -rf -- "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/python/requirements.txt"
  cp "$here/python/requirements.txt" "$stamp"
fi

# The app backend's webhook endpoint (examples/python/webhook_receiver.py):
# it takes the one webhook the offline run below causes, verified with the
# Standard Webhooks library, and exits.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
hook_port=$(free_port)
hook_secret="whsec_$(head -c 32 /dev/urandom | base64)"
"$venv/bin/python" "$here/python/webhook_receiver.py" --port "$hook_port" --secret "$hook_secret" --count 1 \
  >"$work/webhooks.log" 2>&1 &
hook_pid=$!

port=$(free_port)
"$bin" standalone --listen "127.0.0.1:$port" --data-dir "$work/data" --password-hashing fast-insecure \
  --webhook-url "http://127.0.0.1:$hook_port/" --webhook-secret "$hook_secret" \
  --log-format text >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
server="http://127.0.0.1:$port"
say "standalone server on $server"

# Each run must print the message as received live and as history.
check() { # name output text
  local name=$1 output=$2 text=$3
  grep -q "received live: .*: $text" <<<"$output" || { echo "$output" >&2; say "FAIL $name: not received live"; exit 1; }
  grep -q "#[0-9]* .*: $text" <<<"$output" || { echo "$output" >&2; say "FAIL $name: not in history"; exit 1; }
  say "ok    $name"
}

PYTHON="$venv/bin/python" "$here/python/generate.sh"
output=$("$venv/bin/python" "$here/python/chat.py" --server "$server" py-alice py-bob "hello from python" 2>&1) ||
  { echo "$output" >&2; say "FAIL python"; exit 1; }
check python "$output" "hello from python"
# Run again: the users exist now (registering is skipped), history grows.
output=$("$venv/bin/python" "$here/python/chat.py" --server "$server" py-alice py-bob "again from python" 2>&1) ||
  { echo "$output" >&2; say "FAIL python (second run)"; exit 1; }
check "python, second run" "$output" "again from python"

# An offline recipient: the message is stored, and the app is told by webhook.
output=$("$venv/bin/python" "$here/python/chat.py" --server "$server" --offline py-alice py-wes "wake up, py-wes" 2>&1) ||
  { echo "$output" >&2; say "FAIL python, offline recipient"; exit 1; }
grep -q "#[0-9]* py-alice: wake up, py-wes" <<<"$output" || { echo "$output" >&2; say "FAIL python, offline: not in history"; exit 1; }
for _ in $(seq 100); do kill -0 "$hook_pid" 2>/dev/null || break; sleep 0.1; done
grep -q "^wake py-wes (direct): py-alice: wake up, py-wes$" "$work/webhooks.log" ||
  { cat "$work/webhooks.log" "$work/server.log" >&2; say "FAIL webhook: not received and verified"; exit 1; }
say "ok    python, an offline recipient woken by a verified webhook"

# --- Node: @grpc/grpc-js + @grpc/proto-loader ---------------------------------
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
output=$(node "$here/node/chat.mjs" --server "$server" js-carol js-dan "hello from node" 2>&1) ||
  { echo "$output" >&2; say "FAIL node"; exit 1; }
check node "$output" "hello from node"

# A refusal reaches the integrator as a gRPC status name and a message.
if output=$(node "$here/node/chat.mjs" --server "$server" js-carol js-carol "to myself" 2>&1); then
  echo "$output" >&2; say "FAIL node: a message to oneself was accepted"; exit 1
fi
grep -q "error: INVALID_ARGUMENT: " <<<"$output" || { echo "$output" >&2; say "FAIL node: refusal not in words"; exit 1; }
say "ok    node, a refusal in words"
