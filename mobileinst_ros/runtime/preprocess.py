"""Image checks, grayscale to RGB, letterbox / stretch resize (numpy + OpenCV).

The network takes the RGB pixels as ``uint8 [1, H, W, 3]`` at a fixed model resolution; it normalises
them itself (the exported shallow graph), so no float copy of the image is made here.
Any image size and aspect ratio is accepted: ``letterbox`` keeps the aspect ratio and pads the right
and bottom (so that mask coordinates need no offset), ``stretch`` resizes to the model size.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ImageError", "Geometry", "check_rgb8", "make_geometry", "resize_to_content", "to_model_input"]


class ImageError(ValueError):
    """An image the engine cannot take, with what was expected."""


@dataclass(frozen=True)
class Geometry:
    """How an image of ``image_size`` maps onto the model input of ``input_size`` (both (w, h)).

    ``scale_x``/``scale_y``: input pixels per image pixel; the content starts at the input's top-left.
    """

    image_size: tuple[int, int]
    input_size: tuple[int, int]
    scale_x: float
    scale_y: float

    @property
    def content_size(self) -> tuple[int, int]:
        """(w, h) of the resized image inside the model input (the rest is padding)."""
        # at least one pixel: a 3 x 500 image still has content after letterboxing
        return (min(self.input_size[0], max(1, round(self.image_size[0] * self.scale_x))),
                min(self.input_size[1], max(1, round(self.image_size[1] * self.scale_y))))


def check_rgb8(image: np.ndarray) -> np.ndarray:
    """Accept RGB uint8 (H, W, 3) and grayscale uint8 (H, W) or (H, W, 1); reject everything else with a
    message that says how to convert it (ROS images: ``messages.images.image_to_rgb``).
    Returns RGB uint8 (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array (H, W, 3) RGB uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected RGB uint8, got dtype {image.dtype}; convert 16-bit images to 8 bits first "
                         f"(e.g. (image >> 8).astype(np.uint8)), scale float images to 0..255 uint8")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected RGB uint8 (H, W, 3) or grayscale (H, W), got shape {image.shape}; "
                         f"convert 4-channel images first (e.g. cv2.cvtColor(image, cv2.COLOR_BGRA2RGB))")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"image is empty: shape {image.shape}")
    return image


def make_geometry(image_size: tuple[int, int], input_size: tuple[int, int], mode: str) -> Geometry:
    """Geometry for ``mode`` 'letterbox' (keep aspect, pad right/bottom) or 'stretch'."""
    (iw, ih), (w, h) = image_size, input_size
    if mode == "letterbox":
        scale = min(w / iw, h / ih)
        return Geometry(image_size, input_size, scale, scale)
    if mode == "stretch":
        return Geometry(image_size, input_size, w / iw, h / ih)
    raise ValueError(f"resize mode must be 'letterbox' or 'stretch', got {mode!r}")


def resize_to_content(rgb: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The image at ``geometry``'s content size (unchanged when it already is)."""
    cw, ch = geometry.content_size
    if (cw, ch) == (rgb.shape[1], rgb.shape[0]):
        return rgb
    # bilinear as in training (data/transforms.py), also when shrinking
    return cv2.resize(rgb, (cw, ch), interpolation=cv2.INTER_LINEAR)


def to_model_input(rgb: np.ndarray, geometry: Geometry, pad_value: int, channels: int = 3) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> uint8 [1, h, w, channels] at ``geometry``'s input size, the rest filled with
    ``pad_value`` (the model's normalisation mean, so that padding normalises to 0). ``channels`` 4 adds
    a constant fourth channel (alpha 255), for INT8 graphs whose stem takes one with zero weights."""
    w, h = geometry.input_size
    cw, ch = geometry.content_size
    rgb = resize_to_content(rgb, geometry)
    out = np.full((1, h, w, channels), pad_value, np.uint8)
    if channels == 4:
        out[0, :ch, :cw] = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA)
    elif rgb.flags.c_contiguous:
        out[0, :ch, :cw] = rgb
    else:  # e.g. a BGR message viewed as RGB: numpy copies such views 4x faster one channel at a time
        for c in range(3):
            out[0, :ch, :cw, c] = rgb[:, :, c]
    return out
