"""Clip augmentation: scale jitter, horizontal flip and crop, the same for every frame of a clip.

numpy + OpenCV. One ``ClipParams`` is drawn per clip and applied to each frame and each mask so that
an object keeps its geometry across the frames the model sees together.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ClipParams", "ClipAugment", "resize_for_model"]

PAD_VALUE = 127  # normalises to ~0 with (x - 127) / 128


@dataclass(frozen=True)
class ClipParams:
    scale: float     # resize factor applied to the source frame
    flip: bool       # horizontal flip after resizing
    top: int         # crop offset in the resized (and padded) frame
    left: int


@dataclass(frozen=True)
class ClipAugment:
    """Resize by ``cover * U(scale_range)`` (cover = smallest scale that fills ``out_size``), flip with
    ``flip_prob``, pad to at least ``out_size`` and crop ``out_size`` = (height, width) at random."""

    out_size: tuple[int, int]
    scale_range: tuple[float, float] = (0.8, 1.25)
    flip_prob: float = 0.5

    def sample(self, rng: np.random.Generator, height: int, width: int) -> ClipParams:
        out_h, out_w = self.out_size
        cover = max(out_h / height, out_w / width)
        scale = cover * float(rng.uniform(*self.scale_range))
        new_h, new_w = max(round(height * scale), out_h), max(round(width * scale), out_w)
        return ClipParams(scale, bool(rng.random() < self.flip_prob),
                          int(rng.integers(0, new_h - out_h + 1)), int(rng.integers(0, new_w - out_w + 1)))

    def _geometry(self, array: np.ndarray, params: ClipParams, interpolation: int, pad: int) -> np.ndarray:
        h, w = array.shape[:2]
        size = (max(1, round(w * params.scale)), max(1, round(h * params.scale)))
        out = cv2.resize(array, size, interpolation=interpolation)
        if params.flip:
            out = out[:, ::-1]
        out_h, out_w = self.out_size
        pad_h, pad_w = max(0, out_h - out.shape[0]), max(0, out_w - out.shape[1])
        if pad_h or pad_w:
            widths = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (out.ndim - 2)
            out = np.pad(out, widths, constant_values=pad)
        return np.ascontiguousarray(out[params.top:params.top + out_h, params.left:params.left + out_w])

    def image(self, image: np.ndarray, params: ClipParams) -> np.ndarray:
        """RGB uint8 [H,W,3] -> [out_h,out_w,3]."""
        return self._geometry(image, params, cv2.INTER_LINEAR, PAD_VALUE)

    def masks(self, masks: np.ndarray, params: ClipParams) -> np.ndarray:
        """uint8 [M,H,W] -> [M,out_h,out_w] (nearest neighbour keeps them binary)."""
        if masks.shape[0] == 0:
            return np.zeros((0, *self.out_size), np.uint8)
        # OpenCV resizes up to 512 channels at once: put instances last
        moved = self._geometry(np.moveaxis(masks, 0, -1), params, cv2.INTER_NEAREST, 0)
        return np.ascontiguousarray(np.moveaxis(moved.reshape(*self.out_size, -1), -1, 0))


def resize_for_model(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Plain resize of an RGB frame to the model's (height, width) for inference."""
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
