#!/usr/bin/env python3
"""How well a perfect mask at a given stride could match a dataset's masks: the ceiling the input size and the mask
stride put on mask AP, before any model.

    .venv/bin/python scripts/mask_stride_ceiling.py DATASET_JSON [--stride 8] [--stride 4]

Each labelled mask is average-pooled to the stride grid, upsampled bilinearly and thresholded at 0.5 (what a mask
head at that stride draws at best), then compared with itself. Prints, per class and stride, the mean IoU and the
fraction of object-frames under IoU 0.5 and 0.75 (those no model at that stride and input size can match).
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def oracle_iou(mask: np.ndarray, stride: int) -> float:
    h, w = mask.shape
    gh, gw = -(-h // stride), -(-w // stride)
    padded = np.zeros((gh * stride, gw * stride), np.float32)
    padded[:h, :w] = mask
    coarse = padded.reshape(gh, stride, gw, stride).mean((1, 3))
    drawn = cv2.resize(coarse, (gw * stride, gh * stride), interpolation=cv2.INTER_LINEAR)[:h, :w] > 0.5
    truth = mask > 0
    return float((drawn & truth).sum() / max((drawn | truth).sum(), 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="YouTube-VIS annotations.json")
    parser.add_argument("--stride", type=int, action="append", help="mask stride (repeatable; default 8)")
    args = parser.parse_args()
    data = json.load(open(args.dataset))
    videos = {v["id"]: v for v in data["videos"]}
    classes = {c["id"]: c["name"] for c in data["categories"]}
    for stride in args.stride or [8]:
        ious: dict[str, list[float]] = {}
        for ann in data["annotations"]:
            h, w = videos[ann["video_id"]]["height"], videos[ann["video_id"]]["width"]
            for seg in ann["segmentations"]:
                if seg is None:
                    continue
                rle = seg if isinstance(seg.get("counts"), str) else mask_utils.frPyObjects(seg, h, w)
                mask = mask_utils.decode(rle)
                if mask.any():
                    ious.setdefault(classes[ann["category_id"]], []).append(oracle_iou(mask, stride))
        for name, values in sorted(ious.items()):
            v = np.asarray(values)
            print(json.dumps({"stride": stride, "class": name, "object_frames": len(v), "mean_iou": round(v.mean(), 3),
                              "under_0.5": round(float((v < 0.5).mean()), 3),
                              "under_0.75": round(float((v < 0.75).mean()), 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
