"""Statistics of YouTube-VIS datasets as a Markdown table: videos, frames, tracks and labelled object-frames
per class, mask methods (the ``mask_methods`` mobileinst-autolabel records), and where the videos came from.

    .venv/bin/python scripts/dataset_stats.py DATASET [DATASET ...] > STATS.md
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from mobileinst_ros.data.ytvis import read_json


def _origin(video: dict) -> str:
    if "background" in video:
        return "copy-paste"
    source = Path(video.get("source", video["name"]))
    return f"{source.parent.name}/ (stills)" if video["length"] == 1 else source.name


def stats(path: Path) -> str:
    data = read_json(path / "annotations.json")
    names = {c["id"]: c["name"] for c in data["categories"]}
    tracks, object_frames, methods, origins = Counter(), Counter(), Counter(), Counter()
    frames_by_origin: Counter = Counter()
    for video in data["videos"]:
        origins[_origin(video)] += 1
        frames_by_origin[_origin(video)] += video["length"]
    for ann in data["annotations"]:
        name = names[ann["category_id"]]
        tracks[name] += 1
        object_frames[name] += sum(s is not None for s in ann["segmentations"])
        methods.update(m for m in ann.get("mask_methods") or [] if m)
    lines = [f"## {path}", "",
             f"{len(data['videos'])} videos, {sum(v['length'] for v in data['videos'])} frames, "
             f"{len(data['annotations'])} tracks", "",
             "| class | tracks | labelled object-frames |", "|---|---|---|"]
    lines += [f"| {n} | {tracks[n]} | {object_frames[n]} |" for n in names.values()]
    lines += ["", "| mask method | object-frames |", "|---|---|"]
    lines += [f"| {m} | {c} |" for m, c in methods.most_common()]
    lines += ["", "| from | videos | frames |", "|---|---|---|"]
    lines += [f"| {o} | {c} | {frames_by_origin[o]} |" for o, c in sorted(origins.items())]
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(stats(Path(p)) for p in sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
