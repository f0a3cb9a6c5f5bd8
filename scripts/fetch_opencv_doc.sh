#!/usr/bin/env bash
# Debian's opencv-doc package (BSD-3-Clause), unpacked into DIR/opencv-doc: real footage for the demo
# (examples/data/vtest.avi, people walking) and for mobileinst-autolabel. From Debian's registry only.
#
#   scripts/fetch_opencv_doc.sh [DIR]      (default data_cache/footage)
set -euo pipefail
DIR=${1:-data_cache/footage}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
if [ ! -d "$DIR/opencv-doc/usr" ]; then
  if ! (cd "$DIR" && apt-get download opencv-doc >/dev/null 2>&1); then
    # a machine whose package lists were never fetched: fetch them (root), or say what to run
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update >/dev/null && (cd "$DIR" && apt-get download opencv-doc >/dev/null)
    else
      echo "error: 'apt-get download opencv-doc' failed; run 'sudo apt-get update' once, then try again" >&2
      exit 1
    fi
  fi
  rm -rf "$DIR/opencv-doc.tmp"
  dpkg -x "$DIR"/opencv-doc_*.deb "$DIR/opencv-doc.tmp"
  rm -f "$DIR"/opencv-doc_*.deb
  mv "$DIR/opencv-doc.tmp" "$DIR/opencv-doc"
fi
