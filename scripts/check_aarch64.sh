#!/usr/bin/env bash
# Manual check (not part of `make test`): the exported model gives the same outputs through the engine
# on aarch64 (qemu user emulation, correctness only, ~400x slower) as on this x86 machine.
#
#   sudo scripts/check_aarch64.sh [MODEL_DIR] [WORK_DIR]      (defaults: models/default, /tmp/mobileinst-aarch64)
#   env: RESOLUTION=320x320 PRECISION=fp32 FRAMES=2   (int8: looser tolerances, see the compare step)
#
# Needs root (binfmt_misc, chroot) and Debian's qemu-user-static, binfmt-support, mmdebstrap (installed
# with apt-get if missing). The aarch64 side gets a Debian bookworm arm64 root (mmdebstrap, extract
# variant) plus the aarch64 wheels of onnxruntime, numpy, opencv-python-headless, PyYAML and threadpoolctl from PyPI,
# at the versions of the x86 venv. The chroot has /proc but no /sys: onnxruntime crashes on the host's
# x86 /sys cpuinfo.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
MODEL="$(realpath "${1:-$REPO/models/default}")"
WORK="${2:-/tmp/mobileinst-aarch64}"
RESOLUTION="${RESOLUTION:-320x320}"
PRECISION="${PRECISION:-fp32}"
FRAMES="${FRAMES:-2}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
ROOTFS="$WORK/rootfs"
HELPER="scripts/aarch64_engine_outputs.py"

die() { echo "check_aarch64: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (binfmt_misc and chroot need it)"
[ -f "$MODEL/model.yaml" ] || die "$MODEL: no model.yaml (export a model first: mobileinst-export)"

# the aarch64 side gets exactly the versions the x86 venv runs
pin() { echo "$1==$("$PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))")" || die "$1 missing in $PYTHON"; }

install_tools() {
  local missing=()
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null || missing+=(binfmt-support)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v unzip >/dev/null || missing+=(unzip)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

enable_binfmt() {
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "could not register qemu-aarch64 with binfmt_misc"
}

make_rootfs() {
  if [ ! -x "$ROOTFS/usr/bin/python3.11" ]; then
    mkdir -p "$WORK"
    mmdebstrap --arch=arm64 --variant=extract \
      --include=python3.11-venv,python3-pip,libstdc++6,libgcc-s1 bookworm "$ROOTFS"
  fi
  local site="$ROOTFS/opt/site" wheels="$WORK/wheels"
  if [ ! -d "$site/onnxruntime" ]; then
    mkdir -p "$wheels" "$site"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" \
      --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
      --python-version 3.11 --implementation cp --abi cp311 --abi abi3 \
      "$(pin onnxruntime)" "$(pin numpy)" "$(pin opencv-python-headless)" "$(pin PyYAML)" "$(pin threadpoolctl)"
    for wheel in "$wheels"/*.whl; do unzip -q -o "$wheel" -d "$site"; done
  fi
}

copy_code() {
  local dst="$ROOTFS/opt/check"
  rm -rf "$dst" && mkdir -p "$dst/mobileinst_ros"
  cp "$REPO/mobileinst_ros/__init__.py" "$REPO/mobileinst_ros/masks.py" "$dst/mobileinst_ros/"
  cp -r "$REPO/mobileinst_ros/runtime" "$dst/mobileinst_ros/"
  cp "$REPO/$HELPER" "$dst/"
  cp -r "$MODEL" "$dst/model"
}

run_arm() {
  mkdir -p "$ROOTFS/proc"   # the extract variant makes no /proc
  mount -t proc proc "$ROOTFS/proc"
  trap 'umount "$ROOTFS/proc" 2>/dev/null || true' EXIT
  # the extract variant has no coreutils: the host's env sets a clean environment for the chroot
  env -i PATH=/usr/bin:/bin PYTHONPATH=/opt/site:/opt/check HOME=/tmp "$(command -v chroot)" "$ROOTFS" \
    /usr/bin/python3.11 /opt/check/aarch64_engine_outputs.py run --model /opt/check/model \
    --out /opt/check/arm.npz --resolution "$RESOLUTION" --precision "$PRECISION" --frames "$FRAMES" \
    --frames-from /opt/check/x86.npz
  umount "$ROOTFS/proc"
  trap - EXIT
}

install_tools
enable_binfmt
make_rootfs
copy_code
echo "== x86_64 =="
(cd "$REPO" && PYTHONPATH="$REPO" "$PYTHON" "$HELPER" run --model "$MODEL" --out "$WORK/x86.npz" \
  --resolution "$RESOLUTION" --precision "$PRECISION" --frames "$FRAMES")
cp "$WORK/x86.npz" "$ROOTFS/opt/check/x86.npz"
echo "== aarch64 (qemu) =="
time run_arm
echo "== compare =="
if [ "$PRECISION" = int8 ]; then
  # integer kernels round differently per CPU: outputs differ by a few units in the last place
  COMPARE=(--rtol 0.2 --min-iou 0.9 --allow-different-instances)
else
  COMPARE=()
fi
"$PYTHON" "$REPO/$HELPER" compare "$WORK/x86.npz" "$ROOTFS/opt/check/arm.npz" "${COMPARE[@]}"
