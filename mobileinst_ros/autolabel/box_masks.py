"""Instance masks from detector boxes: OpenCV GrabCut seeded by the box, on a downscaled crop.

GrabCut at full resolution costs 0.3-0.5 s a box; on a crop of the box plus a margin scaled to at most
``max_side`` pixels it costs a few ms, and the mask is scaled back. GrabCut fails where the box's colours
are much like its surroundings (a crowd, low contrast): it gives the whole box to the background or to the
object. It is then run again with the box's central core marked as certain object (``grabcut-core``), and
where that fails too the mask is the ellipse inscribed in the box (``ellipse``). Every mask carries the name
of the method that made it.

``resolve_overlaps`` gives each pixel claimed by several instances to the one nearest the camera (the
lowest box bottom edge, the usual ground-plane cue), so that masks of one frame do not overlap.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["GRABCUT", "GRABCUT_CORE", "ELLIPSE", "box_mask", "ellipse_mask", "resolve_overlaps"]

GRABCUT = "grabcut"
GRABCUT_CORE = "grabcut-core"  # second try, the box centre seeded as object
ELLIPSE = "ellipse"


def ellipse_mask(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """The ellipse inscribed in ``box`` (x1, y1, x2, y2) as a bool [H,W] mask."""
    mask = np.zeros((height, width), np.uint8)
    x1, y1, x2, y2 = (float(v) for v in box)
    center = (round((x1 + x2) / 2), round((y1 + y2) / 2))
    axes = (max(round((x2 - x1) / 2), 1), max(round((y2 - y1) / 2), 1))
    cv2.ellipse(mask, center, axes, 0, 0, 360, 1, -1)
    return mask.astype(bool)


def box_mask(rgb: np.ndarray, box: np.ndarray, max_side: int = 96, margin: float = 0.25, iterations: int = 4,
             min_fill: float = 0.15, max_fill: float = 0.95, seed: int = 0) -> tuple[np.ndarray, str]:
    """(bool [H,W] mask, method) for the object in ``box`` (x1, y1, x2, y2, frame pixels) of ``rgb``.

    The crop is the box plus ``margin`` of its size on each side (clipped to the frame), scaled so that
    its longer side is at most ``max_side``; outside the box is background, inside it probable
    foreground. A result covering less than ``min_fill`` or more than ``max_fill`` of the box falls back
    to the inscribed ellipse. ``seed`` fixes OpenCV's RNG (GrabCut's GMM initialisation uses k-means).
    """
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    if bw < 3 or bh < 3:
        return ellipse_mask(box, height, width), ELLIPSE
    cx1, cy1 = max(int(x1 - margin * bw), 0), max(int(y1 - margin * bh), 0)
    cx2, cy2 = min(int(np.ceil(x2 + margin * bw)), width), min(int(np.ceil(y2 + margin * bh)), height)
    crop = rgb[cy1:cy2, cx1:cx2]
    scale = min(1.0, max_side / max(crop.shape[:2]))
    small = cv2.resize(crop, (max(round(crop.shape[1] * scale), 1), max(round(crop.shape[0] * scale), 1)),
                       interpolation=cv2.INTER_AREA) if scale < 1 else crop
    sh, sw = small.shape[:2]
    rx1, ry1 = int((x1 - cx1) * scale), int((y1 - cy1) * scale)
    rx2, ry2 = int(np.ceil((x2 - cx1) * scale)), int(np.ceil((y2 - cy1) * scale))
    rx2, ry2 = min(max(rx2, rx1 + 2), sw), min(max(ry2, ry1 + 2), sh)
    fg = _grabcut(small, (rx1, ry1, rx2, ry2), False, iterations, seed, min_fill, max_fill)
    method = GRABCUT
    if fg is None:
        # GrabCut gave the whole box to the background or to the object (crowds, low contrast): again with
        # the box's central core marked as certain object, which holds for people and most objects.
        fg = _grabcut(small, (rx1, ry1, rx2, ry2), True, iterations, seed, min_fill, max_fill)
        method = GRABCUT_CORE
    if fg is None:
        return ellipse_mask(box, height, width), ELLIPSE
    # Keep the largest component: GrabCut leaves specks of similar colour around the object.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count > 2:
        fg = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    full = np.zeros((height, width), bool)
    up = cv2.resize(fg.astype(np.float32), (cx2 - cx1, cy2 - cy1), interpolation=cv2.INTER_LINEAR) >= 0.5
    full[cy1:cy2, cx1:cx2] = up
    # The detector's box bounds the object.
    clip = np.zeros_like(full)
    clip[max(int(y1), 0):int(np.ceil(y2)), max(int(x1), 0):int(np.ceil(x2))] = True
    full &= clip
    if not full.any():
        return ellipse_mask(box, height, width), ELLIPSE
    return full, method


def _grabcut(small: np.ndarray, rect: tuple[int, int, int, int], core: bool, iterations: int, seed: int,
             min_fill: float, max_fill: float) -> np.ndarray | None:
    """GrabCut foreground (uint8 [h,w]) of ``small`` seeded by ``rect`` (outside: background); None when it
    fails or its share of the rectangle is outside [min_fill, max_fill]."""
    rx1, ry1, rx2, ry2 = rect
    mask = np.full(small.shape[:2], cv2.GC_BGD, np.uint8)
    mask[ry1:ry2, rx1:rx2] = cv2.GC_PR_FGD
    if core:
        centre = ((rx1 + rx2) // 2, (ry1 + ry2) // 2)
        cv2.ellipse(mask, centre, (max((rx2 - rx1) // 10, 1), max((ry2 - ry1) // 4, 1)), 0, 0, 360, cv2.GC_FGD, -1)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(seed)
    try:
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    inside = fg[ry1:ry2, rx1:rx2]
    fill = inside.mean() if inside.size else 0.0
    return fg if min_fill <= fill <= max_fill else None


def resolve_overlaps(masks: list[np.ndarray], boxes: np.ndarray) -> list[np.ndarray]:
    """Masks without shared pixels: a pixel goes to the instance whose box bottom is lowest (nearest)."""
    if len(masks) < 2:
        return masks
    order = np.argsort(boxes[:, 3])  # farthest first; nearer ones take their pixels
    taken = np.zeros_like(masks[0])
    out: list[np.ndarray] = [m for m in masks]
    for i in order[::-1]:
        out[i] = masks[i] & ~taken
        taken |= masks[i]
    return out
