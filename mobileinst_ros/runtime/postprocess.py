"""Scores, instance selection and masks at the image's resolution (numpy + OpenCV).

The one post-processing (the robot's, and training's validation through ``training.torch_engine``): query score
``sqrt(sigmoid(best class logit) * sigmoid(objectness))``, rescored by the mean mask probability inside
the mask ("maskness"). Here maskness is taken on the stride-8 grid (cheap) rather than at full
resolution. One-to-one matching should leave one query per object, but a briefly trained decoder gives
several (41-68% of the predictions of our CPU-trained models overlapped a better one, docs/training.md), so
a greedy mask NMS on the stride-8 grid drops a prediction whose mask overlaps a better-scored one at IoU
above ``duplicate_iou`` (any class: two classes on one object are a duplicate too; 1 turns it off). Masks are ``kernels @ mask_features`` (stride-8 logits); each is warped straight from the
stride-8 grid to the original image with one bilinear affine map (exact letterbox geometry, no
intermediate full-resolution copy), and only over the box where it can exceed the threshold.

``split_components`` cuts a mask into its connected parts on the stride-8 grid, each part an instance of its
own: a briefly trained model's kernel often fires on every look-alike in view (one "person" mask over a whole
crowd, docs/training.md) while the mask itself follows them well, so the parts are the people. A part keeps
its parent's logits on its cells and the ring around them that no other part holds, and ``OUTSIDE_LOGIT``
elsewhere; the tracker follows each part within a window around where it last was (``restrict``, ``grow``).
"""
from __future__ import annotations

import cv2
import numpy as np

from mobileinst_ros.masks import mask_bbox
from mobileinst_ros.runtime.preprocess import Geometry

__all__ = ["Box", "NO_BOX", "Rect", "sigmoid", "query_scores", "rank", "mask_logits", "mask_stats", "not_duplicates",
           "masks_to_image", "split_components", "restrict", "grow", "grow_rect", "above_threshold", "cell_iou",
           "OUTSIDE_LOGIT"]

# the logit of a cell outside a part's region: no bilinear mix with it reaches any mask threshold in use
OUTSIDE_LOGIT = np.float32(-30.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, float32, stable for large |x|."""
    x = np.asarray(x, np.float32)
    return np.exp(-np.logaddexp(np.float32(0), -x)).astype(np.float32)


def query_scores(logits: np.ndarray, objectness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """logits [N, C], objectness [N] -> (scores [N], class_ids [N]) with
    score = sqrt(sigmoid(logit of the best class) * sigmoid(objectness))."""
    probs = sigmoid(logits)
    class_ids = probs.argmax(axis=1)
    scores = np.sqrt(probs[np.arange(len(class_ids)), class_ids] * sigmoid(objectness))
    return scores.astype(np.float32), class_ids.astype(np.int64)


def rank(scores: np.ndarray, threshold: float, limit: int) -> np.ndarray:
    """Indices of the at most ``limit`` scores >= ``threshold``, best first."""
    keep = np.flatnonzero(scores >= threshold)
    return keep[np.argsort(-scores[keep], kind="stable")][:limit]


def mask_logits(kernels: np.ndarray, mask_features: np.ndarray) -> np.ndarray:
    """kernels [K, D], mask_features [D, h, w] -> mask logits [K, h, w] (a MatMul: faster than Einsum)."""
    d, h, w = mask_features.shape
    return (kernels @ mask_features.reshape(d, h * w)).reshape(len(kernels), h, w)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def _inside_content(logits: np.ndarray, geometry: Geometry, stride: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(logits, bool mask above ``threshold``) of stride-``stride`` mask logits [K, h, w] cut to the grid
    cells of the image content (the letterbox padding dropped)."""
    gw = -(-geometry.content_size[0] // stride)
    gh = -(-geometry.content_size[1] // stride)
    content = logits[:, :gh, :gw]
    return content, content > _logit(threshold)


def mask_stats(logits: np.ndarray, geometry: Geometry, stride: int,
               threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(maskness [K], cells [K]) of stride-``stride`` mask logits [K, h, w] over the image content only
    (letterbox padding ignored): the mean probability inside each mask (0 if empty) and its area in
    grid cells."""
    content, inside = _inside_content(logits, geometry, stride, threshold)
    count = inside.sum(axis=(1, 2))
    # the sigmoid of the cells inside the masks only: a few hundred of the K x h x w (0.5 -> 0.2 ms a frame)
    total = np.bincount(np.nonzero(inside)[0], weights=sigmoid(content[inside]), minlength=len(logits))
    return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32), count.astype(np.int64)


def cell_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of bool masks a [N, h, w] and b [M, h, w] on one grid (0 between two empty masks)."""
    cells = int(np.prod(a.shape[1:]))
    fa = a.reshape(len(a), cells).astype(np.float32)
    fb = b.reshape(len(b), cells).astype(np.float32)
    inter = fa @ fb.T
    return inter / np.maximum(fa.sum(axis=1)[:, None] + fb.sum(axis=1)[None, :] - inter, 1)


def not_duplicates(logits: np.ndarray, scores: np.ndarray, geometry: Geometry, stride: int, threshold: float,
                   duplicate_iou: float) -> np.ndarray:
    """Greedy mask NMS of stride-``stride`` mask logits [K, h, w] with scores [K] -> bool [K]: False for a
    mask whose IoU (over the image content, at ``threshold``) with a better-scored kept mask exceeds
    ``duplicate_iou``. Empty masks are kept (they overlap nothing)."""
    keep = np.ones(len(scores), bool)
    if duplicate_iou >= 1 or len(scores) < 2:
        return keep
    inside = _inside_content(logits, geometry, stride, threshold)[1]
    iou = cell_iou(inside, inside)
    for i in np.argsort(-scores, kind="stable"):
        if keep[i]:
            later = (scores < scores[i]) | ((scores == scores[i]) & (np.arange(len(scores)) > i))
            keep &= ~(later & (iou[i] > duplicate_iou))
    return keep


def above_threshold(logits: np.ndarray, threshold: float) -> np.ndarray:
    """Stride-8 mask logits [K, h, w] -> bool [K, h, w]: cells whose probability exceeds ``threshold``."""
    return logits > _logit(threshold)


def grow(regions: np.ndarray, cells: int) -> np.ndarray:
    """bool regions [K, h, w], each dilated by ``cells`` grid cells (a square window)."""
    size = 2 * cells + 1
    window = np.ones((size, size), np.uint8)
    return np.stack([cv2.dilate(r.astype(np.uint8), window).astype(bool) for r in regions]) if len(regions) \
        else regions.astype(bool)


Rect = tuple[int, int, int, int]  # y0, x0, y1, x1 on a grid, ends exclusive


def grow_rect(rect: Rect, cells: int, grid: tuple[int, int]) -> Rect:
    """``rect`` grown by ``cells`` on every side, clipped to the grid (h, w)."""
    return (max(0, rect[0] - cells), max(0, rect[1] - cells), min(grid[0], rect[2] + cells),
            min(grid[1], rect[3] + cells))


def restrict(logits: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Mask logits [K, h, w] with every cell outside bool ``regions`` [K, h, w] set to ``OUTSIDE_LOGIT``."""
    return np.where(regions, logits, OUTSIDE_LOGIT).astype(np.float32)


def split_components(logits: np.ndarray, geometry: Geometry, stride: int, threshold: float,
                     min_fraction: float = 0.3, min_cells: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Stride-``stride`` mask logits [K, h, w] -> (parts' logits [M, h, w], parent index [M]): each mask cut
    into its 8-connected parts above ``threshold`` over the image content; parts smaller than
    ``min_fraction`` of the mask's largest part or than ``min_cells`` cells are dropped as fragments (both
    chosen on the training clips of vtest.avi, docs/training.md). A mask with at most one part is passed on
    unchanged. A part's region is its cells plus the ring of cells around them that no other part
    of the same mask holds."""
    inside = _inside_content(logits, geometry, stride, threshold)[1]
    gh, gw = inside.shape[1:]
    parts, parent = [], []
    for k in range(len(logits)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(inside[k].astype(np.uint8), connectivity=8)
        if count <= 2:
            parts.append(logits[k])
            parent.append(k)
            continue
        areas = stats[1:, cv2.CC_STAT_AREA]
        for label in np.flatnonzero((areas >= min_fraction * areas.max()) & (areas >= min_cells)) + 1:
            # within the part's box grown by the ring: the rest of the grid is outside anyway
            x, y, w, h = stats[label, :4]
            y0, x0, y1, x1 = grow_rect((y, x, y + h, x + w), 1, (gh, gw))
            window = labels[y0:y1, x0:x1]
            own = window == label
            region = grow(own[None], 1)[0] & ((window == 0) | own)
            part = np.full(logits.shape[1:], OUTSIDE_LOGIT, np.float32)
            part[y0:y1, x0:x1] = restrict(logits[k, y0:y1, x0:x1], region)
            parts.append(part)
            parent.append(k)
    shape = (0, *logits.shape[1:])
    return (np.stack(parts) if parts else np.zeros(shape, np.float32)), np.asarray(parent, np.int64)


Box = tuple[int, int, int, int]  # x, y, width, height in image pixels; all zeros for an empty mask
NO_BOX: Box = (0, 0, 0, 0)


def _warp_into(mask: np.ndarray, logits: np.ndarray, geometry: Geometry, stride: int,
               threshold_logit: float) -> Box:
    """One stride-``stride`` logit map [h, w] -> the all-False bool ``mask`` at the image size, warped only in
    the window its cells above threshold can reach; returns the mask's tight box."""
    iw, ih = geometry.image_size
    above = logits > threshold_logit
    rows = np.flatnonzero(above.any(axis=1))
    if rows.size == 0:
        return NO_BOX  # bilinear values never exceed the largest grid value: nothing can pass
    cols = np.flatnonzero(above.any(axis=0))
    # grid coordinate of image pixel x: x * a + b, with a = scale / stride (pixel centres aligned)
    ax, ay = geometry.scale_x / stride, geometry.scale_y / stride
    bx, by = 0.5 * ax - 0.5, 0.5 * ay - 0.5
    # only image pixels within one grid cell of a cell above threshold can pass
    x0 = max(0, int(np.floor((cols[0] - 1 - bx) / ax)))
    x1 = min(iw, int(np.ceil((cols[-1] + 1 - bx) / ax)) + 1)
    y0 = max(0, int(np.floor((rows[0] - 1 - by) / ay)))
    y1 = min(ih, int(np.ceil((rows[-1] + 1 - by) / ay)) + 1)
    if x1 <= x0 or y1 <= y0:
        return NO_BOX
    affine = np.array([[ax, 0, bx + ax * x0], [0, ay, by + ay * y0]], np.float64)
    warped = cv2.warpAffine(logits, affine, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    window = warped > threshold_logit
    mask[y0:y1, x0:x1] = window
    x, y, w, h = mask_bbox(window)  # the window's box, not the whole image's: 1/20 of the scan at 640x480
    return (x0 + x, y0 + y, w, h) if w else NO_BOX


def masks_to_image(logits: np.ndarray, geometry: Geometry, stride: int,
                   threshold: float) -> tuple[np.ndarray, list[Box]]:
    """Stride-``stride`` mask logits [K, h, w] -> (bool masks [K, H, W] at ``geometry.image_size``, their tight
    boxes (x, y, w, h), all zeros where empty) at probability ``threshold``; padding of a letterboxed input never
    reaches the image."""
    logits = np.ascontiguousarray(logits, np.float32)
    threshold_logit = _logit(threshold)
    iw, ih = geometry.image_size
    masks = np.zeros((len(logits), ih, iw), bool)
    boxes = [_warp_into(masks[k], logits[k], geometry, stride, threshold_logit) for k in range(len(logits))]
    return masks, boxes
