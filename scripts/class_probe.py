#!/usr/bin/env python3
"""Which of a model's features name an object's class: linear probes on features averaged under each ground-truth
mask, fitted on the objects of one labelled video set and scored on another, per object size, beside the class the
model itself gives each object.

    .venv/bin/python scripts/class_probe.py CHECKPOINT TRAIN_JSON TEST_JSON [--train-videos 120] [--every 2]

Features, each averaged under the object's mask on its own grid: the mask features (stride 8) and the backbone's
x3 (stride 8), x4 (16) and x5 (32), alone and together. The model's class: of its queries whose stride-8 mask
overlaps the object at IoU >= 0.5, the best-scoring one's (an object without such a query counts as wrong; a second
row scores only the objects that have one). A probe that names unseen objects more often than the model, on the
objects the model masks, says the class head, not the features, loses them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mobileinst_ros.data.ytvis import DatasetError, VideoDataset, load_ytvis
from mobileinst_ros.export.export import ExportError, load_checkpoint
from mobileinst_ros.model.mobileinst import normalize_images
from mobileinst_ros.runtime.model_dir import parse_resolution
from mobileinst_ros.runtime.postprocess import query_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from object_errors import AREAS  # noqa: E402  (a sibling script)

FEATURES = ("mask_features", "x3", "x4", "x5")
PROBES = (("mask_features",), ("x3",), ("x4",), ("x5",), ("mask_features", "x3", "x4", "x5"))


@torch.no_grad()
def collect(model: torch.nn.Module, data: VideoDataset, videos: int, every: int,
            resolution: tuple[int, int]) -> list[dict]:
    """Per object-frame: its class, area (image pixels), pooled features and the model's class for it."""
    rows = []
    for v, video in enumerate(data.videos[:videos]):
        for f in range(0, video.length, every):
            image = cv2.resize(data.frame(v, f), resolution, interpolation=cv2.INTER_LINEAR)
            out = model(normalize_images(torch.from_numpy(image).permute(2, 0, 1)[None]))
            grids = dict(zip(FEATURES, (out["mask_features"], *out["features"][:3])))
            masks = (out["masks"][0] > 0).flatten(1)  # [N, h*w], stride 8
            scores, class_ids = query_scores(out["logits"][0].numpy(), out["objectness"][0].numpy())
            for truth in data.frame_instances(v, f):
                area = int(truth.mask.sum())
                if area == 0:
                    continue
                weight = torch.from_numpy(cv2.resize(truth.mask.astype(np.float32), resolution,
                                                     interpolation=cv2.INTER_AREA))[None, None]
                pooled = {name: _pool(grid[0], weight) for name, grid in grids.items()}
                cells = (F.adaptive_avg_pool2d(weight, out["masks"].shape[-2:]) > 0.3).flatten()
                iou = ((masks & cells).sum(1) / (masks | cells).sum(1).clamp(min=1)).numpy()
                overlapping = np.flatnonzero(iou >= 0.5)
                said = int(class_ids[overlapping[np.argmax(scores[overlapping])]]) if len(overlapping) else -1
                rows.append({"class": truth.class_id, "area": area, "said": said, **pooled})
    return rows


def _pool(grid: torch.Tensor, weight: torch.Tensor) -> np.ndarray:
    """grid [C, h, w], weight [1, 1, H, W] -> the grid's channels averaged under the weight at the grid's size."""
    cell = F.adaptive_avg_pool2d(weight, grid.shape[-2:])[0]
    return ((grid * cell).sum((1, 2)) / cell.sum().clamp(min=1e-6)).numpy()


def fit_probe(train: list[dict], test: list[dict], names: tuple[str, ...], classes: int) -> np.ndarray:
    """A linear classifier (L-BFGS, small L2) on the standardised features ``names`` of ``train`` -> whether
    it names each object of ``test`` right."""
    def matrix(rows: list[dict]) -> torch.Tensor:
        return torch.tensor(np.stack([np.concatenate([r[n] for n in names]) for r in rows]))

    x, x_test = matrix(train), matrix(test)
    mean, std = x.mean(0), x.std(0) + 1e-5
    x, x_test = (x - mean) / std, (x_test - mean) / std
    y = torch.tensor([r["class"] for r in train])
    linear = torch.nn.Linear(x.shape[1], classes)
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=300)

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = F.cross_entropy(linear(x), y) + 1e-3 * linear.weight.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    with torch.no_grad():
        return (linear(x_test).argmax(1).numpy() == np.array([r["class"] for r in test]))


def by_size(rows: list[dict], right: np.ndarray) -> str:
    cells = []
    for low, high in AREAS:
        inside = np.array([low <= r["area"] < (high or np.inf) for r in rows], bool)
        cells.append(f"{right[inside].mean():.0%} ({inside.sum()})" if inside.any() else "-")
    return " | ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="training checkpoint (.pt)")
    parser.add_argument("train", help="YouTube-VIS annotations.json the probes are fitted on")
    parser.add_argument("test", help="YouTube-VIS annotations.json they are scored on")
    parser.add_argument("--train-videos", type=int, default=120, help="the first N videos of the fitting set")
    parser.add_argument("--every", type=int, default=2, help="every N-th frame of each video")
    parser.add_argument("--resolution", default="384x288", help="model input WxH")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        model, classes, _ = load_checkpoint(args.checkpoint)
        fit_set, test_set = load_ytvis(args.train), load_ytvis(args.test)
        resolution = parse_resolution(args.resolution)
    except (ExportError, DatasetError, ValueError) as err:
        print(f"class_probe: {err}", file=sys.stderr)
        return 2
    for data, path in ((fit_set, args.train), (test_set, args.test)):
        if data.classes != classes:
            print(f"class_probe: {path}: classes {data.classes} are not the model's {classes}", file=sys.stderr)
            return 2
    train = collect(model, fit_set, args.train_videos, args.every, resolution)
    test = collect(model, test_set, len(test_set.videos), args.every, resolution)
    print(f"{args.checkpoint}: probes fitted on {len(train)} object-frames of {args.train}, scored on {len(test)} of "
          f"{args.test}; objects named right")
    sizes = " | ".join(f"{low}-{high} px" if high else f"{low} px and over" for low, high in AREAS)
    print(f"| classifier | {sizes} |\n|---|{'---|' * len(AREAS)}")
    said = np.array([r["said"] == r["class"] for r in test], bool)
    print(f"| the model | {by_size(test, said)} |")
    masked = [r for r in test if r["said"] >= 0]  # the class of objects it has a mask for, not its misses
    print(f"| the model, objects it masks | {by_size(masked, np.array([r['said'] == r['class'] for r in masked]))} |")
    for names in PROBES:
        print(f"| probe on {' + '.join(names)} | {by_size(test, fit_probe(train, test, names, len(classes)))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
