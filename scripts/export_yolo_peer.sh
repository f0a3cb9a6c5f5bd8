#!/usr/bin/env bash
# Export Ultralytics YOLO-seg peers to ONNX for `mobileinst-bench --peer NAME=PATH`, in a SCRATCH venv.
#
# ultralytics is AGPL-3.0: it is never a dependency of mobileinst_ros and never enters the project venv.
# The models are built from ultralytics' architecture yaml with random weights (latency does not depend
# on the weights; nothing is downloaded), exported with opset 17 at a fixed 480x640 input.
#
#   scripts/export_yolo_peer.sh [VENV] [OUT_DIR] [ARCH...]
#   defaults: VENV=/work/scratch/yolo_venv OUT_DIR=runs/peers ARCH="yolo11n-seg yolov8n-seg"
#
# then, with the project venv (INT8 copy the same way mobileinst-quantize makes ours, and the bench):
#   .venv/bin/python -m mobileinst_ros.bench.yolo_seg quantize runs/peers/yolo11n-seg.onnx runs/peers/yolo11n-seg-int8.onnx
#   taskset -c 1 .venv/bin/mobileinst-bench --model runs/models/shapes-int8 --resolution 640x480 --no-peers \
#       --peer yolo11n-seg=runs/peers/yolo11n-seg.onnx --peer yolo11n-seg-int8=runs/peers/yolo11n-seg-int8.onnx
#
# Traps (FACTS.md): ultralytics reads torchvision's version at import, and PyPI's torchvision is a CUDA
# build that does not import with the CPU torch; export never imports it, so it is installed without
# dependencies only for its metadata. `pip install torch==2.13.0` takes the CPU build.
set -euo pipefail
VENV=${1:-/work/scratch/yolo_venv}
OUT=$(realpath -m "${2:-runs/peers}")
shift $(( $# > 2 ? 2 : $# ))
ARCHS=${*:-yolo11n-seg yolov8n-seg}

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch==2.13.0 onnx numpy pyyaml opencv-python-headless pillow matplotlib \
        scipy requests tqdm psutil polars
    "$VENV/bin/pip" install --quiet --no-deps ultralytics ultralytics-thop torchvision
fi
mkdir -p "$OUT"
cd "$OUT"
YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false "$VENV/bin/python" - $ARCHS <<'EOF'
import sys

from ultralytics import YOLO

for arch in sys.argv[1:]:
    model = YOLO(f"{arch}.yaml", task="segment")       # architecture only: random weights
    path = model.export(format="onnx", opset=17, imgsz=(480, 640), simplify=False, dynamic=False)
    print(f"exported {path}")
EOF
