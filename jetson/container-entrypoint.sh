#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Container entry point: (re)build the TensorRT engine if missing or stale, then run the gateway.
#   docker run ... biomoe-edge:r36 [CONFIG]      (default /etc/biomoe-edge/gateway.toml)
set -eu
config=${1:-/etc/biomoe-edge/gateway.toml}
set -a
# shellcheck source=engine.env
. /etc/biomoe-edge/engine.env
set +a
mkdir -p "$(dirname "$BIOMOE_ENGINE")" "$(dirname "$BIOMOE_ONNX")"
python /opt/biomoe-edge/libexec/engine_check.py --build
exec biomoe-edge run --quiet "$config"
