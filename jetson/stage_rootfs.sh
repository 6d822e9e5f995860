#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Stage the biomoe-edge gateway into a Jetson root filesystem (Linux_for_Tegra/rootfs) before flashing a fleet.
#
#   sudo jetson/stage_rootfs.sh [options] Linux_for_Tegra/rootfs
#
# Installs, without running anything built for the target: the SDK and its aarch64 wheels (pip --target with
# --platform/--python-version for the rootfs's Python) into ROOTFS/opt/biomoe-edge/lib with launchers in
# ROOTFS/opt/biomoe-edge/bin; the default /etc/biomoe-edge/gateway.toml and engine.env; both services and their
# enablement (a symlink in multi-user.target.wants); the system user (sysusers.d entry, also applied to the
# rootfs's passwd/group with systemd-sysusers --root when available). A second run changes nothing.
# Then flash as usual (README.md, "Deploy on a Jetson"): sudo ./flash.sh ... or sudo ./tools/kernel_flash/l4t_initrd_flash.sh ...
set -euo pipefail

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PYTHON=${PYTHON:-python3}
L4T_MAJOR=""
WHEEL=""
WHEELHOUSE=""
NO_DEPS=0
ONNX=""
ROOTFS=""

usage() {
  awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0"
  cat <<'EOF'
Options:
  --l4t 36|38        the rootfs's L4T release (default: read ROOTFS/etc/nv_tegra_release)
  --wheel FILE       install this SDK wheel (default: build one from this checkout)
  --wheelhouse DIR   take the SDK's dependencies, and setuptools>=77 to build it, from DIR only
                     (offline: pip --no-index --find-links DIR)
  --no-deps          install the SDK alone, not NumPy, SciPy, CuPy, bleak... (you provide them)
  --onnx FILE        copy this ONNX model (and its .json manifest) to /var/lib/biomoe-edge/models/tiny_biomoe.onnx
Environment: PYTHON, the host Python with pip (default python3). Its own setuptools does not matter: pip builds
the SDK wheel in an isolated environment with what pyproject.toml's [build-system] requires.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --l4t) [ $# -ge 2 ] || die "--l4t needs 36 or 38"; L4T_MAJOR=${2#[Rr]}; shift ;;
    --wheel) [ $# -ge 2 ] || die "--wheel needs a file"; WHEEL=$2; shift ;;
    --wheelhouse) [ $# -ge 2 ] || die "--wheelhouse needs a folder"; WHEELHOUSE=$2; shift ;;
    --no-deps) NO_DEPS=1 ;;
    --onnx) [ $# -ge 2 ] || die "--onnx needs a file"; ONNX=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) [ -z "$ROOTFS" ] || die "one ROOTFS only (got $ROOTFS and $1)"; ROOTFS=$1 ;;
  esac
  shift
done
[ -n "$ROOTFS" ] || { usage >&2; die "no ROOTFS given"; }
[ -d "$ROOTFS/etc" ] || die "$ROOTFS does not look like a root filesystem (no etc/ in it)"
ROOTFS=$(cd "$ROOTFS" && pwd)

if [ -z "$L4T_MAJOR" ]; then
  RELEASE=$(l4t_release_of "$ROOTFS/etc/nv_tegra_release") \
    || die "cannot read $ROOTFS/etc/nv_tegra_release (run Linux_for_Tegra/apply_binaries.sh first, or pass --l4t)"
  L4T_MAJOR=${RELEASE%%.*}
fi
target_for_l4t "$L4T_MAJOR" || die "$(unsupported_release_message "R$L4T_MAJOR")"
PY_TAG=cp${PYTHON_VERSION/./}

say "staging biomoe-edge into $ROOTFS for L4T R$L4T_MAJOR (JetPack $JETPACK): Python $PYTHON_VERSION, $CUPY_PACKAGE"

# -- the SDK: aarch64 wheels for the rootfs's Python, into /opt/biomoe-edge/lib --------------------------------
LIB=$ROOTFS$BIOMOE_PREFIX/lib
STAMP=$ROOTFS$BIOMOE_PREFIX/.sdk-stamp
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
pip_target=(--target "$WORK/lib" --no-compile --only-binary=:all: --implementation cp --abi "$PY_TAG"
  --python-version "$PYTHON_VERSION" --platform manylinux2014_aarch64)
# pip takes each --platform literally: every manylinux_2_x up to the rootfs's glibc (onnxruntime's aarch64 wheels
# are manylinux_2_28 only since 1.17, for one).
for minor in $(seq 17 "${GLIBC#2_}"); do
  pip_target+=(--platform "manylinux_2_${minor}_aarch64")
done
if [ -n "$WHEELHOUSE" ]; then
  pip_target+=(--no-index --find-links "$WHEELHOUSE")
fi
if [ "$NO_DEPS" = 1 ]; then
  pip_target+=(--no-deps)
fi
if [ -n "$WHEEL" ]; then
  digest=$({ sha256sum <"$WHEEL"; printf '%s\n' "$L4T_MAJOR" "$NO_DEPS" "$WHEELHOUSE"; } | sha256sum | cut -d ' ' -f 1)
else
  digest=$(source_digest "$L4T_MAJOR" "$NO_DEPS" "$WHEELHOUSE")
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$digest" ] && [ -f "$LIB/biomoe_edge/__init__.py" ]; then
  say "unchanged  $LIB"
else
  if [ -z "$WHEEL" ]; then
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
      || die "the host Python ($PYTHON) has no pip: install it (Ubuntu: sudo apt install python3-pip) or set PYTHON"
    copy_source "$WORK/src"
    # Build isolation: pip installs pyproject.toml's [build-system] requirements (setuptools>=77, for the SPDX
    # license field) into a fresh environment, so a stock host setuptools (59 on Ubuntu 22.04, 68 on 24.04) is fine.
    build_from=()
    if [ -n "$WHEELHOUSE" ]; then
      build_from=(--no-index --find-links "$WHEELHOUSE")
    fi
    if ! "$PYTHON" -m pip wheel --quiet --no-deps ${build_from[@]+"${build_from[@]}"} -w "$WORK/wheel" "$WORK/src" \
      >"$WORK/wheel.log" 2>&1; then
      cat "$WORK/wheel.log" >&2
      missing=$(sed -n 's/.*No matching distribution found for \(.*\)$/\1/p' "$WORK/wheel.log" | head -n 1)
      if [ -n "$missing" ] && [ -n "$WHEELHOUSE" ]; then
        die "building the SDK wheel needs $missing (pyproject.toml [build-system]), which is not in $WHEELHOUSE: add it there (pip download '$missing' -d $WHEELHOUSE)"
      elif [ -n "$missing" ]; then
        die "building the SDK wheel needs $missing (pyproject.toml [build-system]), which pip could not get from its package index"
      fi
      die "building the SDK wheel with $PYTHON failed (pip's output above)"
    fi
    built=("$WORK"/wheel/biomoe_edge-*.whl)
    WHEEL=${built[0]}
  fi
  requirements=("${WHEEL}[ble,mqtt]")
  if [ "$NO_DEPS" = 0 ]; then
    requirements+=("$CUPY_PACKAGE>=13")
    # pip evaluates environment markers with the host's Python, not --python-version: the SDK's
    # `tomli; python_version < "3.11"` would be skipped for the rootfs's Python 3.10 without this.
    case "$PYTHON_VERSION" in 3.10) requirements+=("tomli>=2.2.1") ;; esac
  fi
  "$PYTHON" -m pip install --quiet "${pip_target[@]}" "${requirements[@]}"
  # Console scripts carry the host Python's path, and direct_url.json a temporary path: launchers replace both.
  rm -rf "$WORK/lib/bin"
  rm -f "$WORK"/lib/*.dist-info/direct_url.json
  rm -rf "$LIB"
  mkdir -p "$(dirname "$LIB")"
  mv "$WORK/lib" "$LIB"
  printf '%s\n' "$digest" >"$STAMP"
  say "installed  $LIB"
fi

# -- launchers: the rootfs's own python3 with the SDK first on its path ---------------------------------------
cat >"$WORK/python" <<EOF
#!/bin/sh
# biomoe-edge's Python: the system python3 (it sees JetPack's tensorrt) with the SDK in $BIOMOE_PREFIX/lib first.
PYTHONPATH=$BIOMOE_PREFIX/lib\${PYTHONPATH:+:\$PYTHONPATH}
export PYTHONPATH
exec /usr/bin/python3 "\$@"
EOF
cat >"$WORK/biomoe-edge" <<EOF
#!/bin/sh
exec $BIOMOE_PREFIX/bin/python -m biomoe_edge "\$@"
EOF
install_if_changed "$WORK/python" "$ROOTFS$BIOMOE_PREFIX/bin/python" 755
install_if_changed "$WORK/biomoe-edge" "$ROOTFS$BIOMOE_PREFIX/bin/biomoe-edge" 755

# -- services, configuration, user ----------------------------------------------------------------------------
install_payload "$ROOTFS"
link_if_changed /etc/systemd/system/biomoe-edge.service "$ROOTFS/etc/systemd/system/multi-user.target.wants/biomoe-edge.service"
for dir in /var/lib/biomoe-edge/models /var/lib/biomoe-edge/engines; do
  [ -d "$ROOTFS$dir" ] || { install -d -m 0750 "$ROOTFS$dir"; say "created    $ROOTFS$dir"; }
done
if [ -n "$ONNX" ]; then
  install_if_changed "$ONNX" "$ROOTFS/var/lib/biomoe-edge/models/tiny_biomoe.onnx" 640
  manifest=${ONNX%.*}.json
  if [ -f "$manifest" ]; then
    install_if_changed "$manifest" "$ROOTFS/var/lib/biomoe-edge/models/tiny_biomoe.json" 640
  fi
fi
# systemd gives /var/lib/biomoe-edge to the service user at its first start (StateDirectory=).
if command -v systemd-sysusers >/dev/null; then
  if grep -q '^biomoe-edge:' "$ROOTFS/etc/passwd" 2>/dev/null; then
    say "unchanged  user biomoe-edge in $ROOTFS/etc/passwd"
  else
    systemd-sysusers --root="$ROOTFS" - <"$JETSON_DIR/sysusers.d/biomoe-edge.conf"
    say "created    user biomoe-edge in $ROOTFS/etc/passwd"
  fi
else
  say "note: systemd-sysusers not on this host: the user biomoe-edge is created at first boot (systemd-sysusers.service)"
fi

# -- what the rootfs still lacks ------------------------------------------------------------------------------
if ! compgen -G "$ROOTFS/usr/lib/python3*/dist-packages/tensorrt*" >/dev/null; then
  say "note: JetPack's TensorRT for Python is not in this rootfs. Flash with SDK Manager (it installs JetPack),"
  say "      or install it on the booted board: sudo apt install nvidia-cuda nvidia-tensorrt python3-libnvinfer"
fi
say "done: $ROOTFS is staged. Flash it (README.md, \"B. Stage a rootfs before flashing\")."
