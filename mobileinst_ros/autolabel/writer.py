"""Writing a YouTube-VIS dataset (docs/design.md layout) so that nothing is ever half-written.

Frames and annotations go to ``<out>.partial-<pid>`` next to ``out``; ``commit()`` writes
``annotations.json`` and renames the directory into place (an existing ``out`` is replaced only with
``overwrite``). An exception inside ``with DatasetWriter(...)`` removes the partial directory.
"""
from __future__ import annotations

import json
import os
from collections import Counter
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["DatasetWriter", "JPEG_QUALITY", "OutputExistsError", "encode_rle", "mask_bbox_xywh"]

JPEG_QUALITY = 92


class OutputExistsError(FileExistsError):
    """The output directory exists and ``overwrite`` was not given."""


def encode_rle(mask: np.ndarray) -> dict:
    """bool [H,W] -> COCO compressed RLE dict (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def mask_bbox_xywh(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class DatasetWriter:
    """Collects videos, frames and tracks; ``commit()`` publishes the dataset at ``out``."""

    def __init__(self, out: str | Path, classes: list[str], info: dict[str, Any], overwrite: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise OutputExistsError(f"{self.out} already exists (pass --overwrite to replace it)")
        self.overwrite = overwrite
        self.partial = self.out.parent / f"{self.out.name}.partial-{os.getpid()}"
        for stale in self.out.parent.glob(f"{self.out.name}.partial-*"):
            if stale == self.partial or not _alive(stale.name.rsplit("-", 1)[-1]):
                shutil.rmtree(stale, ignore_errors=True)  # left by a run that was killed
        (self.partial / "JPEGImages").mkdir(parents=True)
        self.classes = list(classes)
        self.data: dict[str, Any] = {
            "info": info, "licenses": [],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.classes)],
            "videos": [], "annotations": []}

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None and self.partial.exists():
            shutil.rmtree(self.partial, ignore_errors=True)

    def frame_path(self, video: str, t: int) -> Path:
        return self.partial / "JPEGImages" / video / f"{t:05d}.jpg"

    def write_frame(self, video: str, t: int, rgb: np.ndarray) -> None:
        path = self.frame_path(video, t)
        path.parent.mkdir(exist_ok=True)
        if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [int(cv2.IMWRITE_JPEG_QUALITY),
                                                                            JPEG_QUALITY]):
            raise OSError(f"could not write {path}")

    def add_video(self, name: str, length: int, height: int, width: int, **extra: Any) -> int:
        """Register a video whose frames 0..length-1 were written; returns its id."""
        video_id = len(self.data["videos"]) + 1
        self.data["videos"].append({"id": video_id, "name": name, "width": width, "height": height,
                                    "length": length, "file_names": [f"{name}/{t:05d}.jpg" for t in range(length)],
                                    **extra})
        return video_id

    def add_track(self, video_id: int, class_name: str, masks: list[np.ndarray | None],
                  methods: list[str | None], **extra: Any) -> int | None:
        """One annotation (per-frame masks, None where absent); returns its id, or None if all empty."""
        if not any(m is not None and m.any() for m in masks):
            return None
        segs, areas, boxes, used = [], [], [], []
        for mask, method in zip(masks, methods):
            if mask is None or not mask.any():
                segs.append(None), areas.append(None), boxes.append(None), used.append(None)
                continue
            segs.append(encode_rle(mask))
            areas.append(int(mask.sum()))
            boxes.append(mask_bbox_xywh(mask))
            used.append(method)
        present = [m for m in used if m is not None]
        ann_id = len(self.data["annotations"]) + 1
        self.data["annotations"].append({
            "id": ann_id, "video_id": video_id, "category_id": self.classes.index(class_name) + 1, "iscrowd": 0,
            "segmentations": segs, "areas": areas, "bboxes": boxes,
            # Which method made each frame's mask, and the most frequent one: judge or filter labels by it
            # (a tie goes to the method seen first: a set's order changes from run to run with string hashing)
            "mask_methods": used, "mask_method": Counter(present).most_common(1)[0][0], **extra})
        return ann_id

    def commit(self) -> Path:
        """Write annotations.json and move the dataset into place; returns ``out``."""
        (self.partial / "annotations.json").write_text(json.dumps(self.data))
        old = None
        if self.out.exists():
            old = self.out.parent / f"{self.out.name}.old-{os.getpid()}"
            self.out.rename(old)
        self.partial.rename(self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out
