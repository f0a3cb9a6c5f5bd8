"""Mask quality of box-seeded masks against exact ground truth (e.g. mobileinst-synth videos).

For every annotated object of every frame: its box from the ground-truth mask -> ``box_mask`` -> IoU with
the ground truth. Reported per method that made the mask and per class, next to two baselines that need no
image (the filled box and its inscribed ellipse), so the figure says what GrabCut adds.
"""
from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
from tqdm import tqdm

from mobileinst_ros.autolabel.box_masks import box_mask, ellipse_mask
from mobileinst_ros.data.ytvis import VideoDataset

__all__ = ["mask_iou", "measure_mask_quality"]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def measure_mask_quality(dataset: VideoDataset, max_side: int = 96, max_objects: int | None = None,
                         min_area: int = 64, progress: bool = True) -> dict:
    """Mean IoU of GrabCut masks (and baselines) against the dataset's masks; seconds per object."""
    by_method: dict[str, list[float]] = defaultdict(list)
    by_class: dict[str, list[float]] = defaultdict(list)
    box_ious, ellipse_ious, all_ious = [], [], []
    seconds = 0.0
    count = 0
    total = sum(v.length for v in dataset.videos)
    with tqdm(total=total, desc="mask quality", unit="frame", disable=not progress) as bar:
        for v, video in enumerate(dataset.videos):
            for t in range(video.length):
                bar.update()
                if max_objects is not None and count >= max_objects:
                    continue
                rgb = dataset.frame(v, t)
                for inst in dataset.frame_instances(v, t):
                    if inst.mask.sum() < min_area:
                        continue
                    ys, xs = np.nonzero(inst.mask)
                    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
                    start = time.perf_counter()
                    mask, method = box_mask(rgb, box, max_side=max_side)
                    seconds += time.perf_counter() - start
                    iou = mask_iou(mask, inst.mask)
                    all_ious.append(iou)
                    by_method[method].append(iou)
                    by_class[dataset.classes[inst.class_id]].append(iou)
                    filled = np.zeros_like(inst.mask)
                    filled[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = True
                    box_ious.append(mask_iou(filled, inst.mask))
                    ellipse_ious.append(mask_iou(ellipse_mask(box, *inst.mask.shape), inst.mask))
                    count += 1
    mean = lambda xs: round(float(np.mean(xs)), 4) if xs else None  # noqa: E731
    return {
        "objects": count, "max_side": max_side, "mean_iou": mean(all_ious),
        "ms_per_object": round(1000 * seconds / max(count, 1), 2),
        "by_method": {m: {"objects": len(x), "mean_iou": mean(x)} for m, x in sorted(by_method.items())},
        "by_class": {c: {"objects": len(x), "mean_iou": mean(x)} for c, x in sorted(by_class.items())},
        "baselines": {"filled_box": mean(box_ious), "inscribed_ellipse": mean(ellipse_ious)},
    }
