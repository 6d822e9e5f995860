#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Install the biomoe-edge gateway on a running Jetson (JetPack 6 / L4T r36 on Orin, JetPack 7 / L4T r38 on Thor).
#
#   sudo jetson/setup.sh [--onnx model.onnx]     install or update; a second run changes nothing
#   jetson/setup.sh --print-plan                 print what would be installed, change nothing (no root needed)
#
# Steps: read the L4T release and the module; apt-install what is missing; create the system user; create a
# virtual environment that sees JetPack's own tensorrt (--system-site-packages); install the SDK with the CuPy
# wheel for the board's CUDA; install the services and the default configuration; verify tensorrt, cupy and the
# GPU. BIOMOE_NV_TEGRA_RELEASE and BIOMOE_DT_MODEL replace /etc/nv_tegra_release and /proc/device-tree/model.
set -euo pipefail

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

NV_TEGRA_RELEASE=${BIOMOE_NV_TEGRA_RELEASE:-/etc/nv_tegra_release}
DT_MODEL=${BIOMOE_DT_MODEL:-/proc/device-tree/model}
PRINT_PLAN=0
ONNX=""
SKIP_APT=0
SKIP_VERIFY=0

usage() {
  awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0"
  cat <<'EOF'
Options:
  --print-plan     print the plan for this board and exit without changing anything
  --onnx FILE      copy this ONNX model (and its .json manifest) to /var/lib/biomoe-edge/models/tiny_biomoe.onnx
  --skip-apt       do not run apt-get (packages installed by other means)
  --skip-verify    do not check tensorrt, cupy and the GPU at the end
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --print-plan) PRINT_PLAN=1 ;;
    --onnx) [ $# -ge 2 ] || die "--onnx needs a file"; ONNX=$2; shift ;;
    --skip-apt) SKIP_APT=1 ;;
    --skip-verify) SKIP_VERIFY=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
  shift
done

# -- what board is this? --------------------------------------------------------------------------------------
[ -e "$NV_TEGRA_RELEASE" ] || die "$NV_TEGRA_RELEASE not found: this is not a Jetson running Jetson Linux (L4T)"
RELEASE=$(l4t_release_of "$NV_TEGRA_RELEASE") || die "cannot read the L4T release from $NV_TEGRA_RELEASE"
MAJOR=${RELEASE%%.*}
target_for_l4t "$MAJOR" || die "$(unsupported_release_message "R$RELEASE")"
MODEL=$(module_model_of "$DT_MODEL" || true)
case "$MODEL" in
  *Orin*|*Thor*) ;;
  *) say "warning: module '${MODEL:-unknown}' is neither an Orin nor a Thor; continuing on L4T R$RELEASE" >&2 ;;
esac

VENV=$BIOMOE_PREFIX/venv
SDK_STAMP=$BIOMOE_PREFIX/.sdk-stamp
SDK_EXTRAS="[ble,mqtt]"
CUPY_REQUIREMENT="$CUPY_PACKAGE>=13"

cat <<EOF
L4T release:         R$RELEASE (JetPack $JETPACK, Ubuntu $UBUNTU)
module:              ${MODEL:-unknown}
python:              $PYTHON_VERSION (system python3, with JetPack's tensorrt)
CUDA:                $CUDA_MAJOR
CuPy wheel:          $CUPY_PACKAGE
apt packages:        $APT_PACKAGES
system user:         biomoe-edge (groups bluetooth, video, render) from /etc/sysusers.d/biomoe-edge.conf
virtual environment: $VENV (--system-site-packages)
SDK:                 $REPO_DIR$SDK_EXTRAS + $CUPY_REQUIREMENT
launchers:           $BIOMOE_PREFIX/bin/biomoe-edge, $BIOMOE_PREFIX/bin/python
services:            biomoe-edge.service (enabled), biomoe-edge-engine.service (run before every gateway start)
configuration:       /etc/biomoe-edge/gateway.toml (0640 root:biomoe-edge), /etc/biomoe-edge/engine.env (installed once, never overwritten); secrets in /etc/biomoe-edge/secrets (0750)
state:               /var/lib/biomoe-edge (models/, engines/, embeddings/)
EOF
if [ "$PRINT_PLAN" = 1 ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root: sudo $0"

# -- apt: only what is missing --------------------------------------------------------------------------------
missing=()
for package in $APT_PACKAGES; do
  # shellcheck disable=SC2016  # ${db:Status-Abbrev} is dpkg-query's format, not a shell expansion
  if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)" != "ii " ]; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  say "unchanged  apt packages (all installed)"
elif [ "$SKIP_APT" = 1 ]; then
  say "warning: not installed, and --skip-apt given: ${missing[*]}" >&2
else
  say "apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# -- system user, services, configuration ---------------------------------------------------------------------
install_payload ""
systemd-sysusers /etc/sysusers.d/biomoe-edge.conf
# Now that the group exists: /etc/biomoe-edge to root and the gateway's group only (jetson/tmpfiles.d).
systemd-tmpfiles --create /etc/tmpfiles.d/biomoe-edge.conf
for dir in /var/lib/biomoe-edge /var/lib/biomoe-edge/models /var/lib/biomoe-edge/engines; do
  [ -d "$dir" ] || { install -d -o biomoe-edge -g biomoe-edge -m 0750 "$dir"; say "created    $dir"; }
done
if [ -n "$ONNX" ]; then
  install_if_changed "$ONNX" /var/lib/biomoe-edge/models/tiny_biomoe.onnx 640
  manifest=${ONNX%.*}.json
  [ -f "$manifest" ] && install_if_changed "$manifest" /var/lib/biomoe-edge/models/tiny_biomoe.json 640
  chown -R biomoe-edge:biomoe-edge /var/lib/biomoe-edge/models
fi

# -- virtual environment and SDK ------------------------------------------------------------------------------
if [ -x "$VENV/bin/python" ] && grep -q '^include-system-site-packages = true' "$VENV/pyvenv.cfg"; then
  say "unchanged  $VENV"
else
  python3 -m venv --system-site-packages "$VENV"
  say "created    $VENV (--system-site-packages)"
fi
digest=$(source_digest "$SDK_EXTRAS" "$CUPY_REQUIREMENT")
if [ -f "$SDK_STAMP" ] && [ "$(cat "$SDK_STAMP")" = "$digest" ] && "$VENV/bin/python" -c 'import biomoe_edge' 2>/dev/null; then
  say "unchanged  SDK in $VENV"
else
  work=$(mktemp -d)
  copy_source "$work/src"
  "$VENV/bin/python" -m pip install --no-cache-dir "$work/src$SDK_EXTRAS" "$CUPY_REQUIREMENT"
  rm -rf "$work"
  printf '%s\n' "$digest" >"$SDK_STAMP"
  say "installed  SDK in $VENV"
fi
link_if_changed "$VENV/bin/biomoe-edge" "$BIOMOE_PREFIX/bin/biomoe-edge"
link_if_changed "$VENV/bin/python" "$BIOMOE_PREFIX/bin/python"

if [ "$CHANGED" = 1 ]; then
  systemctl daemon-reload
fi
if systemctl is-enabled --quiet biomoe-edge.service; then
  say "unchanged  biomoe-edge.service (enabled)"
else
  systemctl enable biomoe-edge.service
fi

# -- verify, as the service user: TensorRT and CuPy import, and the GPU computes ------------------------------
if [ "$SKIP_VERIFY" = 0 ]; then
  runuser -u biomoe-edge -- env HOME=/var/lib/biomoe-edge CUPY_CACHE_DIR=/var/lib/biomoe-edge/cupy-cache \
    "$VENV/bin/python" - <<'EOF' || die "verification failed: see the message above (is JetPack's python3-libnvinfer installed? is biomoe-edge in the video and render groups?)"
import tensorrt, cupy
n = 1 << 20
assert int(cupy.arange(n, dtype=cupy.int64).sum()) == n * (n - 1) // 2, "the GPU returned a wrong sum"
props = cupy.cuda.runtime.getDeviceProperties(0)
name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
print(f"verified   tensorrt {tensorrt.__version__}, cupy {cupy.__version__}, GPU {name} (sm {props['major']}.{props['minor']})")
EOF
fi

cat <<EOF

Done. Next:
  1. Put the model in place (exported on a workstation with \`biomoe-edge export\`), unless --onnx did:
       sudo install -o biomoe-edge -g biomoe-edge -m 640 model.onnx /var/lib/biomoe-edge/models/tiny_biomoe.onnx
  2. List your wearables under [[devices]] in /etc/biomoe-edge/gateway.toml.
  3. sudo systemctl restart biomoe-edge   (the first start builds the TensorRT engine: minutes)
     journalctl -u biomoe-edge-engine -u biomoe-edge -f
EOF
