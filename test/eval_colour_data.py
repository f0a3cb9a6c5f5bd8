"""Test inputs for mobileinst-eval: the hand-weighted colour model (``oracle_model.py``) exported with
the real exporter, and YouTube-VIS datasets of its coloured squares whose masks it finds exactly
(squares aligned to its stride-8 cells), so a run's figures are known in advance."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from oracle_model import CLASSES, box_mask, frame

SIZE = (128, 96)  # (w, h): the exported resolution and the frame size


def _boxes(video: int, t: int) -> dict[int, tuple[int, int, int, int]]:
    """Red moves right, green moves up in video 0 and stays in video 1: they never overlap."""
    return {0: (8 + 8 * t, 16, 24, 24), 1: (96, 64 - 8 * t if video == 0 else 40, 24, 24)}


def make_colour_dataset(root: Path, videos: int = 2, frames: int = 6, white_frame: int | None = None,
                        categories: list[str] | None = None) -> Path:
    """A dataset at ``root``; ``white_frame`` (of video 0) has a white patch that makes the model output
    NaN (a dropped frame); ``categories`` renames the dataset's classes (default: the model's)."""
    names = categories or CLASSES
    root.mkdir(parents=True)
    data: dict = {"videos": [], "annotations": [],
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    for v in range(videos):
        name = f"colour{v}"
        (root / "JPEGImages" / name).mkdir(parents=True)
        segmentations: dict[int, list] = {0: [], 1: []}
        file_names = []
        for t in range(frames):
            boxes = _boxes(v, t)
            image = frame(SIZE, boxes, white=(v == 0 and t == white_frame))
            file_names.append(f"{name}/{t:05d}.png")  # PNG: exact colours
            cv2.imwrite(str(root / "JPEGImages" / file_names[-1]), image[..., ::-1])
            for colour, box in boxes.items():
                rle = mask_utils.encode(np.asfortranarray(box_mask(SIZE, box).astype(np.uint8)))
                segmentations[colour].append({"size": rle["size"], "counts": rle["counts"].decode()})
        data["videos"].append({"id": v + 1, "file_names": file_names, "height": SIZE[1], "width": SIZE[0],
                               "length": frames})
        for colour, segs in segmentations.items():
            data["annotations"].append({"id": len(data["annotations"]) + 1, "video_id": v + 1,
                                        "category_id": colour + 1, "segmentations": segs, "iscrowd": 0})
    (root / "annotations.json").write_text(json.dumps(data))
    return root
