#!/usr/bin/env bash
# What TLS on the gateway costs: the standalone release binary, plaintext
# against TLS (a P-256 certificate from a throwaway CA made with openssl),
# loadgen `direct` at 1,000 msgs/s (100 pairs) and `group` of 100 online
# members at 200 msgs/s, 15 s each, alternating, 3 runs of each. Prints the
# server's and the load generator's CPU per acknowledged message (the
# loadgen's `--watch`) and latency percentiles; BENCHMARKS.md has the
# medians. Build first:
#   cargo build --release -p switchboard-server -p switchboard-loadgen
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}/release
bin=$target/switchboard
lg=$target/switchboard-loadgen
work=$(mktemp -d); trap 'rm -rf -- "$work"' EXIT; cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > ext.cnf
openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.crt -days 2 -extfile ext.cnf 2>/dev/null
run() { # mode scenario...
  local mode=$1; shift
  local port=$((20000 + RANDOM % 20000))
  local tlsargs=() scheme=http ca=()
  if [[ $mode == tls ]]; then tlsargs=(--tls-cert tls.crt --tls-key tls.key); scheme=https; ca=(--ca ca.pem); fi
  rm -rf data
  "$bin" standalone --listen 127.0.0.1:$port --data-dir data --password-hashing fast-insecure \
    --send-rate 100000 --send-burst 100000 --call-rate 100000 --call-burst 100000 \
    --anonymous-rate 100000 --anonymous-burst 100000 --log-format text "${tlsargs[@]}" > server.log 2>&1 &
  local pid=$!
  for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break; sleep 0.1; done
  "$lg" --gateways $scheme://127.0.0.1:$port "${ca[@]}" --sources 1 --json --watch server=$pid "$@" > out.json 2> lg.err || true
  kill $pid; wait $pid 2>/dev/null || true
  python3 - "$mode" "$*" <<'PY'
import json, sys
lines = [l for l in open("out.json") if l.strip().startswith("{")]
r = json.loads(lines[-1])
cpu = r.get("extra", {}).get("cpu", {})
print(sys.argv[1], sys.argv[2], json.dumps(cpu), "p50", r.get("latency_ms", {}).get("p50"), "p99", r.get("latency_ms", {}).get("p99"))
PY
}
for i in 1 2 3; do
  for mode in plain tls; do
    run $mode direct --pairs 100 --rate 1000 --duration 15
    run $mode group --members 100 --rate 200 --duration 15
  done
done
