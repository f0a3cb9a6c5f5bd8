"""Debug drawings of tracked instances: the overlay image (masks, outlines, track ids, classes, scores)
and the instance-id label image. Used by the node (only while someone subscribes) and by the demo.
"""
from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["track_colour", "draw_overlay", "label_image"]

_ALPHA = 0.45


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A bright RGB colour that stays the same for a track id (golden-ratio hue steps: neighbours differ)."""
    hue = (track_id * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def draw_overlay(rgb: np.ndarray, masks: Sequence[np.ndarray], track_ids: Sequence[int],
                 captions: Sequence[str]) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) uint8 with each boolean mask (H, W) tinted and outlined in its track's
    colour and ``"#<track id> <caption>"`` written at the top of the mask."""
    out = rgb.copy()
    for mask, track_id in zip(masks, track_ids):
        colour = np.array(track_colour(track_id), np.float32)
        out[mask] = (out[mask] * (1 - _ALPHA) + colour * _ALPHA).astype(np.uint8)
    for mask, track_id, caption in zip(masks, track_ids, captions):
        colour = track_colour(track_id)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, 2, cv2.LINE_AA)
        ys, xs = np.nonzero(mask)
        if ys.size:
            _draw_caption(out, f"#{track_id} {caption}", int(xs.min()), int(ys.min()), colour)
    return out


def _draw_caption(image: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    """Text on a filled box in the track's colour, kept inside the image."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    (w, h), baseline = cv2.getTextSize(text, font, scale, thickness)
    x = min(max(x, 0), max(image.shape[1] - w - 4, 0))
    y = max(y, h + baseline + 4)
    cv2.rectangle(image, (x, y - h - baseline - 4), (x + w + 4, y), colour, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y - baseline - 2), font, scale, (0, 0, 0), thickness, cv2.LINE_AA)


def label_image(height: int, width: int, masks: Sequence[np.ndarray], track_ids: Sequence[int],
                scores: Sequence[float]) -> np.ndarray:
    """int32 (H, W): each pixel holds the track id of the highest-scoring mask covering it, 0 for none."""
    labels = np.zeros((height, width), np.int32)
    for k in np.argsort(scores, kind="stable"):  # ascending: higher scores are painted last, on top
        labels[masks[k]] = track_ids[k]
    return labels
