#!/usr/bin/env python3
"""Where a model loses its AP on a labelled video set, per object size: objects not segmented, segmented with the
wrong class, and how close the masks of the found ones come to what a perfect mask at the model's grid gives.

    .venv/bin/python scripts/object_errors.py MODEL DATASET_JSON [--every 2] [--resolution 384x288]

Every ``--every``-th frame runs as a keyframe (T=1) with every candidate down to score 0.05 (40 kept), so that the
figures describe the network, not the score threshold. Per ground-truth object: its best mask of the right class
("found" at IoU >= 0.5), its best mask of any class, and the IoU of a perfect stride-8 mask
(``mask_stride_ceiling.oracle_iou``). Then, for objects under 1000 px, which class the best mask named when it was
wrong.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

from mobileinst_ros.autolabel.quality import mask_iou
from mobileinst_ros.data.ytvis import DatasetError, load_ytvis
from mobileinst_ros.runtime.engine import Engine, ModelLoadError
from mobileinst_ros.runtime.model_dir import parse_resolution

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mask_stride_ceiling import oracle_iou  # noqa: E402  (a sibling script)

AREAS = ((0, 300), (300, 1000), (1000, 3000), (3000, None))
SMALL = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported model directory")
    parser.add_argument("dataset", help="YouTube-VIS annotations.json")
    parser.add_argument("--every", type=int, default=2, help="every N-th frame of each video")
    parser.add_argument("--resolution", default="384x288", help="model input WxH")
    args = parser.parse_args()
    try:
        data = load_ytvis(args.dataset)
        engine = Engine(args.model, resolution=parse_resolution(args.resolution), score_threshold=0.05,
                        max_instances=40)
    except (DatasetError, ModelLoadError, ValueError) as err:
        print(f"object_errors: {err}", file=sys.stderr)
        return 2
    if engine.class_names != data.classes:
        print(f"object_errors: the model's classes {engine.class_names} are not the dataset's {data.classes}",
              file=sys.stderr)
        return 2
    rows, confusions = [], collections.Counter()
    for v, video in enumerate(data.videos):
        for f in range(0, video.length, args.every):
            predictions = engine.infer(data.frame(v, f))
            for truth in data.frame_instances(v, f):
                ious = [mask_iou(p.mask, truth.mask) for p in predictions]
                same = max((iou for p, iou in zip(predictions, ious) if p.class_id == truth.class_id), default=0.0)
                any_class = max(ious, default=0.0)
                area = int(truth.mask.sum())
                best = predictions[int(np.argmax(ious))] if ious else None
                if area < SMALL and any_class >= 0.5 and best.class_id != truth.class_id:
                    confusions[(data.classes[truth.class_id], data.classes[best.class_id])] += 1
                rows.append((same, any_class, oracle_iou(truth.mask.astype(np.float32), 8), area))
    table = np.array(rows, np.float64).reshape(-1, 4)
    print(f"{args.model} on {args.dataset}: {len(table)} object-frames")
    print("| object area (px) | objects | found | any class | IoU of the found (perfect stride 8) "
          "| IoU >= 0.9 (perfect stride 8) |")
    print("|---|---|---|---|---|---|")
    for low, high in AREAS:
        rows_in = table[(table[:, 3] >= low) & (table[:, 3] < (high or np.inf))]
        if not len(rows_in):
            continue
        found = rows_in[rows_in[:, 0] >= 0.5]
        label = f"{low}-{high}" if high else f"{low} and over"
        iou = f"{found[:, 0].mean():.2f} ({found[:, 2].mean():.2f})" if len(found) else "-"
        print(f"| {label} | {len(rows_in)} | {len(found) / len(rows_in):.0%} | {(rows_in[:, 1] >= 0.5).mean():.0%} "
              f"| {iou} | {(rows_in[:, 0] >= 0.9).mean():.0%} ({(rows_in[:, 2] >= 0.9).mean():.0%}) |")
    print(f"objects under {SMALL} px, segmented but named wrong (truth -> said):",
          ", ".join(f"{t} -> {s} {n}" for (t, s), n in confusions.most_common(8)) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
