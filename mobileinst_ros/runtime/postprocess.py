"""Scores, instance selection and masks at the image's resolution (numpy + OpenCV).

Scores follow MobileInst/SparseInst: ``sqrt(max_c sigmoid(logits) * sigmoid(objectness))``, no NMS.
Masks are ``kernels @ mask_features`` (stride-8 logits); each is warped straight from the stride-8 grid
to the original image with one bilinear affine map (exact letterbox geometry, no intermediate
full-resolution copy), and only over the box where it can exceed the threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mobileinst_ros.runtime.preprocess import Geometry

__all__ = ["Selection", "sigmoid", "select_instances", "mask_logits", "MaskSet", "masks_to_image"]


@dataclass
class Selection:
    """Instances kept from one keyframe: ``indices`` [K] into the N queries, ``class_ids`` [K],
    ``scores`` [K] (before mask rescoring), sorted by descending score."""

    indices: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray


@dataclass
class MaskSet:
    """Masks of K instances at the image's resolution.

    ``masks`` bool [K, H, W]; ``maskness`` [K]: mean probability inside each stride-8 mask (0 if empty);
    ``areas`` [K]: pixels of each full-resolution mask."""

    masks: np.ndarray
    maskness: np.ndarray
    areas: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, float32, stable for large |x|."""
    x = np.asarray(x, np.float32)
    return np.exp(-np.logaddexp(np.float32(0), -x)).astype(np.float32)


def select_instances(logits: np.ndarray, objectness: np.ndarray, score_threshold: float,
                     max_instances: int) -> Selection:
    """logits [N, C], objectness [N] -> the at most ``max_instances`` queries scoring >= threshold."""
    probs = sigmoid(logits)
    class_ids = probs.argmax(axis=1)
    scores = np.sqrt(probs[np.arange(len(class_ids)), class_ids] * sigmoid(objectness))
    keep = np.flatnonzero(scores >= score_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_instances]
    return Selection(keep, class_ids[keep].astype(np.int64), scores[keep].astype(np.float32))


def mask_logits(kernels: np.ndarray, mask_features: np.ndarray) -> np.ndarray:
    """kernels [K, D], mask_features [D, h, w] -> mask logits [K, h, w] (a MatMul: faster than Einsum)."""
    d, h, w = mask_features.shape
    return (kernels @ mask_features.reshape(d, h * w)).reshape(len(kernels), h, w)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def _warp_one(logits: np.ndarray, geometry: Geometry, stride: int, threshold_logit: float) -> np.ndarray:
    """One stride-``stride`` logit map [h, w] -> bool mask at the image size, warped only in its box."""
    iw, ih = geometry.image_size
    mask = np.zeros((ih, iw), bool)
    rows = np.flatnonzero((logits > threshold_logit).any(axis=1))
    if rows.size == 0:
        return mask  # bilinear values never exceed the largest grid value: nothing can pass
    cols = np.flatnonzero((logits > threshold_logit).any(axis=0))
    # grid coordinate of image pixel x: x * a + b, with a = scale / stride (pixel centres aligned)
    ax, ay = geometry.scale_x / stride, geometry.scale_y / stride
    bx, by = 0.5 * ax - 0.5, 0.5 * ay - 0.5
    # image pixels whose grid coordinate lies within one cell of a cell above threshold
    x0 = max(0, int(np.floor((cols[0] - 1 - bx) / ax)))
    x1 = min(iw, int(np.ceil((cols[-1] + 1 - bx) / ax)) + 1)
    y0 = max(0, int(np.floor((rows[0] - 1 - by) / ay)))
    y1 = min(ih, int(np.ceil((rows[-1] + 1 - by) / ay)) + 1)
    if x1 <= x0 or y1 <= y0:
        return mask
    affine = np.array([[ax, 0, bx + ax * x0], [0, ay, by + ay * y0]], np.float64)
    warped = cv2.warpAffine(logits, affine, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    mask[y0:y1, x0:x1] = warped > threshold_logit
    return mask


def masks_to_image(logits: np.ndarray, geometry: Geometry, stride: int, threshold: float) -> MaskSet:
    """Stride-``stride`` mask logits [K, h, w] -> MaskSet at ``geometry.image_size`` (probability
    ``threshold``); padding of a letterboxed input never reaches the image."""
    logits = np.ascontiguousarray(logits, np.float32)
    threshold_logit = _logit(threshold)
    gw = -(-geometry.content_size[0] // stride)
    gh = -(-geometry.content_size[1] // stride)
    content = logits[:, :gh, :gw]  # maskness ignores the letterbox padding
    probs = sigmoid(content)
    inside = content > threshold_logit
    count = inside.sum(axis=(1, 2))
    maskness = np.where(count > 0, (probs * inside).sum(axis=(1, 2)) / np.maximum(count, 1), 0.0)
    iw, ih = geometry.image_size
    masks = np.zeros((len(logits), ih, iw), bool)
    for k in range(len(logits)):
        masks[k] = _warp_one(logits[k], geometry, stride, threshold_logit)
    return MaskSet(masks, maskness.astype(np.float32), masks.sum(axis=(1, 2)).astype(np.int64))
