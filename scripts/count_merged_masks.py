"""How often one predicted mask spans several labelled objects of its class (look-alikes merged into one
mask), and how many labelled objects some mask finds at IoU >= 0.5: the engine on frames of a YouTube-VIS
dataset, every frame an image.

    .venv/bin/python scripts/count_merged_masks.py MODEL DATASET_JSON [--class person] [--videos vtest]
        [--every 4] [--min-area 100] [--score-threshold 0.3]

A prediction "covers" a labelled object when it holds more than half of the object's pixels; labelled
objects under ``--min-area`` pixels are left out (teacher labels of a few pixels are mostly noise). Prints
one JSON line.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from mobileinst_ros.autolabel.quality import mask_iou
from mobileinst_ros.data.ytvis import load_ytvis
from mobileinst_ros.runtime.engine import Engine


def count(engine: Engine, dataset, class_name: str, video_prefix: str, every: int, min_area: int) -> dict:
    class_id = dataset.classes.index(class_name)
    engine_class = engine.class_names.index(class_name)
    best_ious, covered_per_mask = [], []
    for v, video in enumerate(dataset.videos):
        if not video.name.startswith(video_prefix):
            continue
        for f in range(0, video.length, every):
            objects = [g.mask for g in dataset.frame_instances(v, f)
                       if g.class_id == class_id and g.mask.sum() >= min_area]
            masks = [i.mask > 0 for i in engine.infer(dataset.frame(v, f)) if i.class_id == engine_class]
            best_ious += [max([mask_iou(m, o) for m in masks], default=0.0) for o in objects]
            covered_per_mask += [sum(np.logical_and(m, o).sum() > 0.5 * o.sum() for o in objects) for m in masks]
    ious, covered = np.asarray(best_ious), np.asarray(covered_per_mask)
    return {"labelled_objects": len(ious), "found_at_iou_0.5": round(float((ious >= 0.5).mean()), 3) if len(ious) else None,
            "masks": len(covered),
            "masks_covering_0_1_2plus": [round(float(x), 3) for x in ((covered == 0).mean(), (covered == 1).mean(),
                                                                      (covered >= 2).mean())] if len(covered) else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("dataset", help="YouTube-VIS annotations.json (images beside it)")
    parser.add_argument("--class", dest="class_name", default="person")
    parser.add_argument("--videos", default="", help="only videos whose name starts with this")
    parser.add_argument("--every", type=int, default=4, help="every N-th frame")
    parser.add_argument("--min-area", type=int, default=100)
    parser.add_argument("--score-threshold", type=float, default=0.3)
    args = parser.parse_args()
    engine = Engine(args.model, threads=1, score_threshold=args.score_threshold)
    result = count(engine, load_ytvis(args.dataset), args.class_name, args.videos, args.every, args.min_area)
    print(json.dumps({"model": args.model, **result}))


if __name__ == "__main__":
    main()
