"""What one evaluation run saw and produced, frame by frame: the common input of metrics and report.

Masks are kept as pycocotools compressed RLE dicts (``counts`` bytes): IoUs are computed on them
directly, and a few thousand frames of masks stay small in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["Detection", "FrameRecord", "RunRecord", "SequenceRecord", "compress_counts", "compress_mask"]


def compress_mask(mask: np.ndarray) -> dict:
    """A boolean (H, W) mask as a pycocotools compressed RLE dict."""
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def compress_counts(counts: np.ndarray | list[int], height: int, width: int) -> dict:
    """COCO uncompressed RLE counts (a message's ``mask_rle``) as a compressed RLE dict."""
    return mask_utils.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]}, height, width)


@dataclass(frozen=True)
class Detection:
    """One object in one frame; ``class_id`` indexes RunRecord.class_names; score 1 for ground truth."""

    track_id: int
    class_id: int
    score: float
    rle: dict


@dataclass
class FrameRecord:
    """One input image. ``predictions`` None: no output came for it (a dropped frame).
    ``ground_truth`` None: the frame has no annotation and is left out of accuracy metrics."""

    stamp_ns: int
    ground_truth: list[Detection] | None
    predictions: list[Detection] | None
    latency_ms: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    is_keyframe: bool | None = None
    end_to_end_ms: float | None = None  # live mode: image published -> instances received


@dataclass
class SequenceRecord:
    """Consecutive frames seen by one tracker (a dataset video, or a whole bag)."""

    name: str
    height: int
    width: int
    frames: list[FrameRecord] = field(default_factory=list)


@dataclass
class RunRecord:
    """A whole run; ``info`` holds what identifies it (model, mode, keyframe interval, input)."""

    class_names: list[str]
    sequences: list[SequenceRecord] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def has_ground_truth(self) -> bool:
        return any(f.ground_truth is not None for s in self.sequences for f in s.frames)

    def frames(self) -> list[FrameRecord]:
        return [f for s in self.sequences for f in s.frames]
