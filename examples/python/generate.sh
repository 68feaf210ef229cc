#!/usr/bin/env bash
# Generates the Python stubs from ../../proto into gen/ with grpc_tools.protoc
# (the usual tool: pip install grpcio-tools). Run it after changing proto/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
proto="$here/../../proto"
python=${PYTHON:-python3}
rm -rf "$here/gen"
mkdir -p "$here/gen"
"$python" -m grpc_tools.protoc -I "$proto" \
  --python_out="$here/gen" --grpc_python_out="$here/gen" \
  "$proto/switchboard/v1/switchboard.proto" "$proto/switchboard/v1/topics.proto"
