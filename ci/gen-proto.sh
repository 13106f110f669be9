#!/usr/bin/env bash
# Regenerate session/proto/session_pb2.py (+ .pyi) from session/proto/session.proto.
# Uses grpcio-tools' bundled protoc, installed into a throw-away directory with --no-deps so the
# project's protobuf runtime is left alone. Gencode from an older protoc runs on a newer runtime
# (protobuf's cross-version guarantee), so the committed file works with the installed runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${GRPC_TOOLS_DIR:-/tmp/session-grpc-tools}"
if [ ! -d "$tools/grpc_tools" ]; then
  python3 -m pip install --quiet --no-deps --target "$tools" 'grpcio-tools==1.85.1'
fi
PYTHONPATH="$tools" python3 -m grpc_tools.protoc -I. --python_out=. --pyi_out=. session/proto/session.proto
echo "regenerated session/proto/session_pb2.py"
