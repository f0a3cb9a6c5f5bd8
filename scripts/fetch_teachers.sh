#!/usr/bin/env bash
# Fetch the teachers mobileinst-autolabel uses and convert them to ONNX. Data-preparation time only:
# nothing here runs at node set-up or run time.
#
#   scripts/fetch_teachers.sh [TEACHER_DIR]      (default data_cache/teachers)
#
# - oid_ssd_mobilenetv2 (Apache-2.0): npm @mediapipe/objectron; the float16 TFLite SSD-MobileNetV2 (Open
#   Images) is bytes 184..9987912 of objectron_solution_packed_assets.data (bytes 0..184 are its label map).
#   Converted with tf2onnx and checked against TFLite's interpreter on a real frame (opencv-doc vtest.avi).
# tensorflow-cpu and tf2onnx go to a venv of their own ($TEACHER_TOOLS, default data_cache/teacher_tools/venv),
# never into the project venv. Needs npm, python3 and the footage (scripts/fetch_footage.sh) for the check.
set -euo pipefail
cd "$(dirname "$0")/.."
TEACHER_DIR=${1:-data_cache/teachers}
TOOLS=${TEACHER_TOOLS:-data_cache/teacher_tools}
PY=.venv/bin/python
OBJECTRON_VERSION=0.4.1675468480
SSD_SHA256=d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6
NAME=oid_ssd_mobilenetv2
OUT=$TEACHER_DIR/$NAME

if [ -f "$OUT/ssd_mobilenetv2_oidv4.onnx" ]; then
  echo "teacher $NAME: $OUT/ssd_mobilenetv2_oidv4.onnx already there"
  exit 0
fi
mkdir -p "$TOOLS" "$OUT"
if [ ! -x "$TOOLS/venv/bin/python" ] || ! "$TOOLS/venv/bin/python" -c "import tensorflow, tf2onnx, onnxruntime, cv2" 2>/dev/null; then
  echo "conversion venv: tensorflow-cpu, tf2onnx, onnxruntime, opencv-python-headless -> $TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check tensorflow-cpu tf2onnx onnxruntime opencv-python-headless
fi

PACK=$TOOLS/npm
mkdir -p "$PACK"
if [ ! -f "$PACK/objectron/package/objectron_solution_packed_assets.data" ]; then
  (cd "$PACK" && npm pack --silent "@mediapipe/objectron@$OBJECTRON_VERSION" >/dev/null)
  mkdir -p "$PACK/objectron" && tar xzf "$PACK/mediapipe-objectron-$OBJECTRON_VERSION.tgz" -C "$PACK/objectron"
fi
DATA=$PACK/objectron/package/objectron_solution_packed_assets.data
TFLITE=$PACK/ssd_mobilenetv2_oidv4_fp16.tflite
# The packed-assets loader (objectron_solution_packed_assets_loader.js) lists the byte ranges.
head -c 9987912 "$DATA" | tail -c +185 > "$TFLITE"
echo "$SSD_SHA256  $TFLITE" | sha256sum --check --quiet || { echo "error: $TFLITE: unexpected sha256 (another package version?)" >&2; exit 1; }
LABELS=$(head -c 184 "$DATA" | tail -n +2 | paste -sd, -)
echo "label map: $LABELS"

FRAME=$TOOLS/check_frame.png
VTEST=data_cache/footage/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi
[ -f "$VTEST" ] || { echo "error: $VTEST missing: run scripts/fetch_footage.sh first (the check needs a real frame)" >&2; exit 1; }
"$PY" - "$VTEST" "$FRAME" <<'EOF'
import sys, cv2
capture = cv2.VideoCapture(sys.argv[1])
capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
ok, frame = capture.read()
if not ok or not cv2.imwrite(sys.argv[2], frame):
    sys.exit(f"cannot take frame 100 of {sys.argv[1]}")
EOF
"$TOOLS/venv/bin/python" scripts/convert_teacher.py --tflite "$TFLITE" --onnx "$OUT/ssd_mobilenetv2_oidv4.onnx" \
  --image "$FRAME" --input-scale 0.00784313725490196 --input-offset -1 --tolerance 1e-3
cat > "$OUT/SOURCE.txt" <<EOF
$NAME: SSD-MobileNetV2 trained on Open Images V4 (24 outputs: background + 23 classes), Apache-2.0.
From npm @mediapipe/objectron@$OBJECTRON_VERSION, objectron_solution_packed_assets.data bytes 184..9987912
(object_detection_ssd_mobilenetv2_oidv4_fp16.tflite, sha256 $SSD_SHA256), converted with tf2onnx (opset 17).
Parity with TFLite's interpreter: ssd_mobilenetv2_oidv4.onnx.parity.json. Spec: config/teachers/$NAME.yaml.
EOF
echo "teacher $NAME: $OUT"
