"""Instance masks as COCO *uncompressed* run-length encoding, the layout of ``Instance.mask_rle``.

The mask is flattened column-major (pixel ``(r, c)`` is index ``c * height + r``) and stored as
alternating run lengths of 0s and 1s, starting with 0s. ``pycocotools.mask`` decodes it unchanged.
numpy and OpenCV only: the robot side must not need pycocotools.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["encode_mask", "decode_mask", "mask_bbox"]


def encode_mask(mask: np.ndarray) -> np.ndarray:
    """Encode a 2-D boolean mask (H, W) to uint32 run lengths (COCO uncompressed RLE counts)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (height, width), got shape {mask.shape}")
    flat = mask.astype(bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size])))
    if flat.size and flat[0]:
        counts = np.concatenate(([0], counts))  # RLE always opens with a (possibly empty) run of 0s
    return counts.astype(np.uint32)


def decode_mask(counts: np.ndarray | list[int], height: int, width: int) -> np.ndarray:
    """Decode run lengths back to a boolean (height, width) mask; raise ValueError if they do not fit."""
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if counts.size and counts.min() < 0:
        raise ValueError("RLE counts must be non-negative")
    total = int(counts.sum())
    if total != height * width:
        raise ValueError(f"RLE counts sum to {total}, expected height*width = {height}*{width}")
    values = (np.arange(counts.size) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box ``(x, y, width, height)`` around the True pixels; all zeros for an empty mask."""
    # OpenCV's scan of a uint8 view: half the time of numpy's any() per axis on 640x480 masks
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    return int(x), int(y), int(w), int(h)
