"""Keyframe-to-keyframe association of instance kernels by cosine similarity (Hungarian, thresholded).

MobileInst tracks by kernels: the same object gives similar mask kernels in nearby frames, so the
kernels of a new keyframe are matched to the tracks' kernels one-to-one (maximum total cosine
similarity) and a pair is accepted only at ``similarity >= threshold``. When the engine splits masks into
their parts (``Engine.split_components``), the parts of one mask share its kernel: the overlap of the
tracks' and the detections' masks (IoU on the stride-8 grid) then joins the cosine in the matching, and a
pair must overlap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["Association", "cosine_similarity", "associate"]


@dataclass
class Association:
    """``matches`` [M, 2] (track row, detection row) pairs; ``unmatched_tracks`` and
    ``unmatched_detections`` are row indices; ``similarity`` [T, D] the full cosine matrix."""

    matches: np.ndarray
    unmatched_tracks: np.ndarray
    unmatched_detections: np.ndarray
    similarity: np.ndarray


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [M, D], b [N, D] -> [M, N] cosine similarities (0 against a zero vector)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a / np.where(na > 0, na, 1)) @ (b / np.where(nb > 0, nb, 1)).T


def associate(track_kernels: np.ndarray, detection_kernels: np.ndarray, threshold: float,
              overlap: np.ndarray | None = None) -> Association:
    """Match tracks [T, D] to detections [N, D]: Hungarian on cosine similarity (plus ``overlap`` [T, N],
    mask IoU, where given), pairs below ``threshold`` cosine (or without overlap) rejected."""
    t, n = len(track_kernels), len(detection_kernels)
    if t == 0 or n == 0:
        return Association(np.zeros((0, 2), np.int64), np.arange(t), np.arange(n), np.zeros((t, n)))
    sim = cosine_similarity(track_kernels, detection_kernels)
    gain = sim if overlap is None else sim + overlap
    rows, cols = linear_sum_assignment(gain, maximize=True)
    good = sim[rows, cols] >= threshold
    if overlap is not None:
        good &= overlap[rows, cols] > 0
    matches = np.stack([rows[good], cols[good]], axis=1).astype(np.int64)
    return Association(matches, np.setdiff1d(np.arange(t), matches[:, 0]),
                       np.setdiff1d(np.arange(n), matches[:, 1]), sim)
