"""Which sizes of labelled object the model finds: recall of one class at IoU >= 0.5 per bin of the labelled
box's height in image pixels, every frame an image (the engine and tracker at T=1, as ``mobileinst-eval run``).

    .venv/bin/python scripts/recall_by_height.py MODEL INPUT [--class person] [--resolution 640x480]
        [--score-threshold 0.4] [--max-instances 10] [--duplicate-iou 0.5] [--match mask|box]
        [--bins 0,40,60,80,120]

INPUT is what ``mobileinst-eval run --input`` takes (a bag with ground truth or a YouTube-VIS dataset). Each
labelled object takes the unclaimed prediction of its class that overlaps it most (pycocotools IoU of masks, or
of their boxes with ``--match box``: found at all, whatever the mask). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from pycocotools import mask as mask_utils

from mobileinst_ros.data.bags import GT_TOPIC, IMAGE_TOPIC
from mobileinst_ros.evaluation.metrics import mask_ious
from mobileinst_ros.evaluation.offline import run_offline
from mobileinst_ros.evaluation.records import RunRecord
from mobileinst_ros.evaluation.sources import open_source
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.tracking.tracker import KernelTracker


def _overlaps(labelled: list, predictions: list, match: str) -> np.ndarray:
    """IoU [labelled, predictions] of masks or of their boxes."""
    if match == "mask":
        return mask_ious(labelled, predictions)
    if not labelled or not predictions:
        return np.zeros((len(labelled), len(predictions)))
    boxes = [[mask_utils.toBbox(d.rle).tolist() for d in group] for group in (labelled, predictions)]
    return np.asarray(mask_utils.iou(boxes[0], boxes[1], [0] * len(predictions)))


def recall_by_height(run: RunRecord, class_id: int, bins: list[float], match: str) -> dict:
    """Per height bin: labelled objects and the fraction found at IoU >= 0.5 (one prediction each)."""
    heights, found = [], []
    for sequence in run.sequences:
        for frame in sequence.frames:
            if frame.ground_truth is None:
                continue
            labelled = [d for d in frame.ground_truth if d.class_id == class_id]
            predictions = [d for d in frame.predictions or [] if d.class_id == class_id]
            iou = _overlaps(labelled, predictions, match)
            claimed: set[int] = set()
            for j, obj in enumerate(labelled):
                heights.append(mask_utils.toBbox(obj.rle)[3])
                best = next((int(i) for i in np.argsort(-iou[j]) if int(i) not in claimed and iou[j, i] >= 0.5), None)
                found.append(best is not None)
                if best is not None:
                    claimed.add(best)
    which = np.digitize(heights, bins[1:])
    found_arr = np.asarray(found)
    edges = [f"{edge:g}" for edge in bins] + [""]
    return {f"{edges[b]}-{edges[b + 1]}px": {"labelled": int((which == b).sum()),
                                                     "recall": round(float(found_arr[which == b].mean()), 3)
                                                     if (which == b).any() else None}
            for b in range(len(bins))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("--class", dest="class_name", default="person")
    parser.add_argument("--resolution", help="model input WxH (default: the engine's choice per image)")
    parser.add_argument("--score-threshold", type=float, help="default: the model's")
    parser.add_argument("--max-instances", type=int, help="default: the model's")
    parser.add_argument("--duplicate-iou", type=float, help="default: the model's")
    parser.add_argument("--match", choices=("mask", "box"), default="mask")
    parser.add_argument("--bins", type=lambda t: [float(x) for x in t.split(",")], default=[0, 40, 60, 80, 120],
                        help="lower edges of the height bins, in image pixels")
    args = parser.parse_args()
    engine = Engine(args.model, threads=1, resolution=args.resolution, score_threshold=args.score_threshold,
                    max_instances=args.max_instances, duplicate_iou=args.duplicate_iou)
    if args.class_name not in engine.class_names:
        parser.error(f"the model has no class {args.class_name!r} (it has {', '.join(engine.class_names)})")
    source = open_source(args.input, engine.class_names, IMAGE_TOPIC, GT_TOPIC, gt_required=True)
    run = run_offline(source, KernelTracker(engine, keyframe_interval=1), {}, progress=False)
    print(json.dumps({"class": args.class_name, "match": args.match, "score_threshold": engine.score_threshold,
                      "max_instances": engine.max_instances,
                      "by_height": recall_by_height(run, engine.class_names.index(args.class_name), args.bins,
                                                    args.match)}))


if __name__ == "__main__":
    main()
