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
import sys
from pathlib import Path

import cv2
import numpy as np

from mobileinst_ros.autolabel.quality import mask_iou
from mobileinst_ros.data.ytvis import DatasetError, decode_rle, read_json


def oracle_iou(mask: np.ndarray, stride: int) -> float:
    h, w = mask.shape
    gh, gw = -(-h // stride), -(-w // stride)
    padded = np.zeros((gh * stride, gw * stride), np.float32)
    padded[:h, :w] = mask
    coarse = padded.reshape(gh, stride, gw, stride).mean((1, 3))
    drawn = cv2.resize(coarse, (gw * stride, gh * stride), interpolation=cv2.INTER_LINEAR)[:h, :w] > 0.5
    return mask_iou(drawn, mask > 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="YouTube-VIS annotations.json")
    parser.add_argument("--stride", type=int, action="append", help="mask stride (repeatable; default 8)")
    args = parser.parse_args()
    try:
        data = read_json(Path(args.dataset))
    except DatasetError as err:
        print(f"mask_stride_ceiling: error: {err}", file=sys.stderr)
        return 2
    classes = {c["id"]: c["name"] for c in data["categories"]}
    strides = args.stride or [8]
    ious: dict[tuple[int, str], list[float]] = {}
    for ann in data["annotations"]:
        for seg in ann["segmentations"]:
            mask = decode_rle(seg) if seg is not None else None
            if mask is not None and mask.any():  # decoded once, scored at every stride
                for stride in strides:
                    ious.setdefault((stride, classes[ann["category_id"]]), []).append(oracle_iou(mask, stride))
    for (stride, name), values in sorted(ious.items(), key=lambda item: (strides.index(item[0][0]), item[0][1])):
        v = np.asarray(values)
        print(json.dumps({"stride": stride, "class": name, "object_frames": len(v), "mean_iou": round(v.mean(), 3),
                          "under_0.5": round(float((v < 0.5).mean()), 3),
                          "under_0.75": round(float((v < 0.75).mean()), 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
