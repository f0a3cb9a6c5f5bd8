#!/usr/bin/env python3
"""A YouTube-VIS dataset of another's first N videos: its annotations.json cut to them, their frame folders linked
(not copied). For runs that must see a few videos only, e.g. training and validating on the same 20 videos to find
what caps AP on videos the model has memorised (docs/training.md).

    .venv/bin/python scripts/subset_ytvis.py data_cache/synth_train data_cache/synth_train20 --videos 20
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mobileinst_ros.data.ytvis import DatasetError, read_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="dataset directory with annotations.json and JPEGImages/")
    parser.add_argument("out", type=Path, help="new dataset directory")
    parser.add_argument("--videos", type=int, required=True, help="how many of the first videos to keep")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists")
    try:
        data = read_json(args.source / "annotations.json")
    except DatasetError as error:
        print(f"subset_ytvis: {error}", file=sys.stderr)
        return 1
    data["videos"] = data["videos"][:args.videos]
    kept = {video["id"] for video in data["videos"]}
    data["annotations"] = [a for a in data["annotations"] if a["video_id"] in kept]
    images = args.out / "JPEGImages"
    images.mkdir(parents=True)
    for folder in sorted({name.split("/")[0] for video in data["videos"] for name in video["file_names"]}):
        (images / folder).symlink_to((args.source / "JPEGImages" / folder).resolve())
    (args.out / "annotations.json").write_text(json.dumps(data))
    print(f"{args.out}: {len(data['videos'])} videos, {len(data['annotations'])} tracks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
