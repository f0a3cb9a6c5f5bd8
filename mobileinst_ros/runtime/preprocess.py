"""Image checks, conversion to RGB uint8, letterbox / stretch resize and normalisation (numpy + OpenCV).

The network takes ``float32 [1, 3, H, W]`` with ``(rgb - mean) / scale`` at a fixed model resolution.
Any image size and aspect ratio is accepted: ``letterbox`` keeps the aspect ratio and pads the right
and bottom (so that mask coordinates need no offset), ``stretch`` resizes to the model size.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ImageError", "Geometry", "to_rgb8", "check_rgb8", "make_geometry", "preprocess"]

# Encodings of sensor_msgs/Image that map to RGB without guessing (16-bit keeps the high byte).
_CONVERSIONS = {
    "rgb8": None,
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    "rgb16": None,
    "bgr16": cv2.COLOR_BGR2RGB,
    "rgba16": cv2.COLOR_RGBA2RGB,
    "bgra16": cv2.COLOR_BGRA2RGB,
    "mono16": cv2.COLOR_GRAY2RGB,
}
_CHANNELS = {"rgb": 3, "bgr": 3, "rgba": 4, "bgra": 4, "mono": 1}


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
        return (min(self.input_size[0], round(self.image_size[0] * self.scale_x)),
                min(self.input_size[1], round(self.image_size[1] * self.scale_y)))


def to_rgb8(image: np.ndarray, encoding: str = "rgb8") -> np.ndarray:
    """Convert an image in a ROS ``encoding`` (rgb8, bgr8, rgba8, bgra8, mono8 and their 16-bit forms)
    to contiguous RGB uint8 (H, W, 3). 16-bit images keep their high byte."""
    if encoding not in _CONVERSIONS:
        raise ImageError(f"unsupported image encoding {encoding!r}; expected one of {sorted(_CONVERSIONS)}")
    image = np.asarray(image)
    sixteen = encoding.endswith("16")
    expected_dtype = np.uint16 if sixteen else np.uint8
    if image.dtype != expected_dtype:
        raise ImageError(f"encoding {encoding} needs dtype {np.dtype(expected_dtype).name}, got {image.dtype}")
    channels = _CHANNELS[encoding.rstrip("0123456789")]
    if channels == 1 and image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    shape_ok = image.ndim == 2 if channels == 1 else image.ndim == 3 and image.shape[2] == channels
    if not shape_ok:
        raise ImageError(f"encoding {encoding} needs {channels} channel(s), got array of shape {image.shape}")
    if sixteen:
        image = (image >> 8).astype(np.uint8)
    code = _CONVERSIONS[encoding]
    rgb = image if code is None else cv2.cvtColor(image, code)
    return np.ascontiguousarray(rgb)


def check_rgb8(image: np.ndarray) -> np.ndarray:
    """Accept RGB uint8 (H, W, 3) and grayscale uint8 (H, W) or (H, W, 1); reject everything else with a
    message that says how to convert it. Returns RGB uint8 (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array (H, W, 3) RGB uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected RGB uint8, got dtype {image.dtype}; convert 16-bit images with "
                         f"to_rgb8(image, 'rgb16'/'mono16'), scale float images to 0..255 uint8")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected RGB uint8 (H, W, 3) or grayscale (H, W), got shape {image.shape}; "
                         f"convert 4-channel images with to_rgb8(image, 'bgra8' or 'rgba8')")
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


def preprocess(rgb: np.ndarray, geometry: Geometry, mean: float, scale: float) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 [1, 3, h, w] normalised as ``(x - mean) / scale``.

    Padding is filled with ``mean`` so that it normalises to exactly 0."""
    w, h = geometry.input_size
    cw, ch = geometry.content_size
    if (cw, ch) != (rgb.shape[1], rgb.shape[0]):
        shrinking = cw < rgb.shape[1]
        rgb = cv2.resize(rgb, (cw, ch), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    out = np.zeros((1, 3, h, w), np.float32)
    for c in range(3):
        np.subtract(rgb[:, :, c], mean, out=out[0, c, :ch, :cw], dtype=np.float32, casting="unsafe")
    out[0, :, :ch, :cw] *= 1.0 / scale
    return out
