# shellcheck shell=bash disable=SC2034  # the variables set here are read by the scripts that source this file
# Shared by jetson/setup.sh (running board) and jetson/stage_rootfs.sh (rootfs before flashing): what each L4T
# release needs, and installing the payload (services, config, sysusers entry, engine check) idempotently.

BIOMOE_PREFIX=/opt/biomoe-edge
JETSON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$JETSON_DIR/.." && pwd)
# Set to 1 by the install helpers whenever they change a file.
CHANGED=0

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The L4T release in /etc/nv_tegra_release ("# R36 (release), REVISION: 4.4, GCID: ...") as "36.4.4".
l4t_release_of() {
  local file=$1 major revision
  [ -r "$file" ] || return 1
  major=$(sed -n 's/^# R\([0-9][0-9]*\) (release), REVISION: \([0-9.]*\),.*/\1/p' "$file" | head -n 1)
  revision=$(sed -n 's/^# R\([0-9][0-9]*\) (release), REVISION: \([0-9.]*\),.*/\2/p' "$file" | head -n 1)
  [ -n "$major" ] && [ -n "$revision" ] || return 1
  printf '%s.%s\n' "$major" "$revision"
}

# Sets JETPACK, UBUNTU, PYTHON_VERSION, CUDA_MAJOR, CUPY_PACKAGE and APT_PACKAGES for an L4T major release;
# returns 1 for a release biomoe-edge does not support.
target_for_l4t() {
  case "$1" in
    36) JETPACK=6; UBUNTU=22.04; GLIBC=2_35; PYTHON_VERSION=3.10; CUDA_MAJOR=12; CUPY_PACKAGE=cupy-cuda12x ;;
    38) JETPACK=7; UBUNTU=24.04; GLIBC=2_39; PYTHON_VERSION=3.12; CUDA_MAJOR=13; CUPY_PACKAGE=cupy-cuda13x ;;
    *) return 1 ;;
  esac
  # python3-venv: the SDK's virtual environment; bluez: the BLE stack bleak talks to over D-Bus; nvidia-cuda and
  # nvidia-tensorrt (JetPack's component meta-packages) and python3-libnvinfer: CUDA for CuPy, TensorRT for Python.
  APT_PACKAGES="python3-venv python3-pip bluez nvidia-cuda nvidia-tensorrt python3-libnvinfer"
}

unsupported_release_message() {
  printf 'L4T %s is not supported: biomoe-edge needs JetPack 6 (L4T r36: Orin, CUDA 12.6, TensorRT 10.3, Python 3.10)' "$1"
  printf ' or JetPack 7 (L4T r38: Thor, CUDA 13, TensorRT 10.13, Python 3.12). Upgrade the board with SDK Manager first.\n'
}

# The module name from the device tree (NUL-terminated there).
module_model_of() {
  [ -r "$1" ] || return 1
  tr -d '\0' <"$1"
}

# Install SRC at DEST with MODE unless DEST already has exactly that content and mode.
install_if_changed() {
  local src=$1 dest=$2 mode=$3
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "$mode" ]; then
    say "unchanged  $dest"
  else
    install -D -m "$mode" "$src" "$dest"
    say "installed  $dest"
    CHANGED=1
  fi
}

# Install SRC at DEST only when DEST does not exist: configuration the user edits is never overwritten.
install_once() {
  local src=$1 dest=$2 mode=$3
  if [ -e "$dest" ]; then
    say "kept       $dest (exists; edit it in place)"
  else
    install -D -m "$mode" "$src" "$dest"
    say "installed  $dest"
    CHANGED=1
  fi
}

# Like install_once, for a file that may hold secrets: installed with MODE (no access for others), and an existing
# copy that every user can read (installed by an older version as 0644) has that access taken away, content kept.
install_private_once() {
  local src=$1 dest=$2 mode=$3
  if [ -e "$dest" ]; then
    if [ $(( 8#$(stat -c %a "$dest") & 8#007 )) -ne 0 ]; then
      chmod o-rwx "$dest"
      say "tightened  $dest (others may no longer read it)"
      CHANGED=1
    else
      say "kept       $dest (exists; edit it in place)"
    fi
  else
    install -D -m "$mode" "$src" "$dest"
    say "installed  $dest"
    CHANGED=1
  fi
}

# Make LINK a symbolic link to TARGET unless it already is one.
link_if_changed() {
  local target=$1 link=$2
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then
    say "unchanged  $link -> $target"
  else
    mkdir -p "$(dirname "$link")"
    ln -sfn "$target" "$link"
    say "linked     $link -> $target"
    CHANGED=1
  fi
}

# Everything but the SDK itself, into the root ROOT ("" on a running board): the two services, the gateway's
# configuration, the engine paths, the system user's sysusers.d entry, the tmpfiles.d entry that gives the
# configuration to root and the gateway's group only (applied at boot, after the user exists), and the engine check.
install_payload() {
  local root=$1
  install_if_changed "$JETSON_DIR/systemd/biomoe-edge.service" "$root/etc/systemd/system/biomoe-edge.service" 644
  install_if_changed "$JETSON_DIR/systemd/biomoe-edge-engine.service" "$root/etc/systemd/system/biomoe-edge-engine.service" 644
  install_if_changed "$JETSON_DIR/sysusers.d/biomoe-edge.conf" "$root/etc/sysusers.d/biomoe-edge.conf" 644
  install_if_changed "$JETSON_DIR/tmpfiles.d/biomoe-edge.conf" "$root/etc/tmpfiles.d/biomoe-edge.conf" 644
  install_if_changed "$JETSON_DIR/engine_check.py" "$root$BIOMOE_PREFIX/libexec/engine_check.py" 644
  # gateway.toml may hold a broker password: never readable by every user (0640; group biomoe-edge by tmpfiles.d).
  install_private_once "$JETSON_DIR/gateway.toml" "$root/etc/biomoe-edge/gateway.toml" 640
  # engine.env holds paths only; the engine unit and the container read it.
  install_once "$JETSON_DIR/engine.env" "$root/etc/biomoe-edge/engine.env" 644
}

# A digest of the SDK source tree (files git does not ignore, in a git checkout) plus the given words: the SDK is
# reinstalled only when this changes.
source_digest() {
  local files
  if git -C "$REPO_DIR" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(cd "$REPO_DIR" && git ls-files --cached --others --exclude-standard -- pyproject.toml biomoe_edge export runtime firmware_bridge training | LC_ALL=C sort)
  else
    files=$(cd "$REPO_DIR" && find pyproject.toml biomoe_edge export runtime firmware_bridge training -type f \
      -not -path '*/__pycache__/*' -not -path '*/build/*' | LC_ALL=C sort)
  fi
  {
    printf '%s\n' "$@"
    (cd "$REPO_DIR" && printf '%s\n' "$files" | while IFS= read -r f; do [ -f "$f" ] && sha256sum -- "$f"; done)
  } | sha256sum | cut -d ' ' -f 1
}

# Copy the checkout's files that git does not ignore (every file but .venv, .git and build output when it is not a
# git checkout) to DEST: the SDK is built from this clean copy, never from stale build/ folders in the checkout.
copy_source() {
  local dest=$1
  mkdir -p "$dest"
  if git -C "$REPO_DIR" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$REPO_DIR" ls-files -z --cached --others --exclude-standard
  else
    (cd "$REPO_DIR" && find . -type f -not -path './.venv/*' -not -path './.git/*' -not -path '*/build/*' \
      -not -path '*/__pycache__/*' -not -path '*.egg-info/*' -print0)
  fi | (cd "$REPO_DIR" && tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$dest"
}
