"""Instances in 3D: each mask over an aligned depth image, back-projected through the pinhole intrinsics.

Numpy only, no ROS: the node adapts messages to it (``messages.depth``), the tests and the benchmark
drive it directly.

    positions = locate_instances(depth, Intrinsics(fx, fy, cx, cy, width, height), masks)
    # depth: uint16 millimetres or float32 metres, as the camera sent it (0, NaN, inf: no depth)
    positions[i].status, .position, .extent, .distance, .pixels

Conventions (REP 103 optical frame of the colour image, ``header.frame_id``): x right, y down, z forward,
metres. The depth image must be registered to the colour image (same viewpoint, e.g. a RealSense
``aligned_depth_to_color`` stream); it may differ in size (masks are resampled to it, and the intrinsics
are the depth image's). Lens distortion is ignored: use rectified images or ones with a small ``D``.

Robustness: a mask's edge often spills onto the background, and depth cameras leave holes (0 / NaN)
and flying pixels. The depth under a mask is reduced to its median; only pixels within a band around it
(``BAND_MADS`` robust standard deviations, at least ``MIN_BAND_FRACTION`` of the median) are kept, and
the position is the per-axis median of their 3D points, the extent the 5th-95th percentile spread.

Cost: only the pixels under each mask's box are read, and at most ``MAX_SAMPLES`` of a mask's pixels
(evenly spaced) are used, which moves a median by far less than the sensor's noise.
"""
from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import cv2
import numpy as np

__all__ = ["DepthFrame", "DepthPairing", "InstancePosition", "Intrinsics", "PositionStatus", "depth_to_metres",
           "locate_instances"]

MIN_PIXELS = 10          # fewer valid depth pixels under a mask: no position
BAND_MADS = 3.0          # inlier band around the median depth, in robust standard deviations (1.4826 MAD)
MIN_BAND_FRACTION = 0.03  # ... but at least this fraction of the median depth (noise on a flat object)
EXTENT_PERCENTILES = (5.0, 95.0)
MAX_SAMPLES = 4000
# Wait for a late depth frame only while the depth stream is this close behind (not when it has stopped).
LIVE_STREAM_GAP_S = 1.0


class PositionStatus(IntEnum):
    """``Instance.position_status`` (the constants of msg/Instance.msg)."""

    NONE = 0            # depth fusion off
    OK = 1
    NO_DEPTH = 2        # no usable depth image (and camera info) paired with the colour image
    NO_VALID_DEPTH = 3  # fewer than MIN_PIXELS valid depth pixels under the mask


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the depth image (CameraInfo ``k``) and its size in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> Intrinsics:
        """From a row-major 3x3 camera matrix; ValueError unless fx, fy > 0 and every entry is finite."""
        k = np.asarray(k, dtype=np.float64).reshape(-1)
        if k.size != 9 or not np.all(np.isfinite(k)):
            raise ValueError(f"camera matrix k must be 9 finite numbers, got {k.tolist()}")
        if k[0] <= 0 or k[4] <= 0:
            raise ValueError(f"camera matrix k has fx {k[0]} and fy {k[4]}; both must be positive (uncalibrated?)")
        if width <= 0 or height <= 0:
            raise ValueError(f"camera info size {width}x{height} is empty")
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(width), int(height))


@dataclass(frozen=True)
class InstancePosition:
    """One instance's 3D estimate; ``position`` and ``extent`` are (x, y, z) in metres (zeros unless OK)."""

    status: PositionStatus
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    extent: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distance: float = 0.0
    pixels: int = 0  # valid depth pixels the position comes from (of at most MAX_SAMPLES sampled)


def depth_to_metres(depth: np.ndarray) -> np.ndarray:
    """uint16 millimetres (0: no depth) or float32 metres (NaN, inf, <= 0: no depth) -> float32 metres with
    NaN wherever there is no depth."""
    if depth.dtype == np.uint16:
        metres = depth.astype(np.float32) * np.float32(0.001)
        metres[depth == 0] = np.nan
        return metres
    if depth.dtype == np.float32:
        metres = depth.copy()
        metres[~(np.isfinite(metres) & (metres > 0))] = np.nan
        return metres
    raise ValueError(f"depth must be uint16 (mm) or float32 (m), got {depth.dtype}")


def _fit_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def _locate(depth: np.ndarray, intrinsics: Intrinsics, mask: np.ndarray) -> InstancePosition:
    index = np.flatnonzero(mask)
    if index.size < MIN_PIXELS:
        return InstancePosition(PositionStatus.NO_VALID_DEPTH)
    index = index[::max(index.size // MAX_SAMPLES, 1)]
    rows, cols = np.divmod(index, mask.shape[1])
    z = depth_to_metres(depth[rows, cols])
    valid = ~np.isnan(z)
    if np.count_nonzero(valid) < MIN_PIXELS:
        return InstancePosition(PositionStatus.NO_VALID_DEPTH, pixels=int(np.count_nonzero(valid)))
    rows, cols, z = rows[valid], cols[valid], z[valid]
    median = float(np.median(z))
    band = max(BAND_MADS * 1.4826 * float(np.median(np.abs(z - median))), MIN_BAND_FRACTION * median)
    inliers = np.abs(z - median) <= band
    rows, cols, z = rows[inliers], cols[inliers], z[inliers]
    x = (cols - intrinsics.cx) * z / intrinsics.fx
    y = (rows - intrinsics.cy) * z / intrinsics.fy
    points = np.stack([x, y, z])
    position = np.median(points, axis=1)
    low, high = np.percentile(points, EXTENT_PERCENTILES, axis=1)
    return InstancePosition(PositionStatus.OK, tuple(float(v) for v in position),
                            tuple(float(v) for v in high - low), float(np.linalg.norm(position)), int(z.size))


def locate_instances(depth: np.ndarray, intrinsics: Intrinsics,
                     masks: Sequence[np.ndarray]) -> list[InstancePosition]:
    """The 3D position of each boolean mask (any size: resampled to the depth image's) over ``depth``
    (uint16 millimetres or float32 metres, see ``depth_to_metres``). ValueError when the intrinsics are
    for another image size than the depth image."""
    height, width = depth.shape
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise ValueError(f"camera info is for {intrinsics.width}x{intrinsics.height} images, the depth image "
                         f"is {width}x{height}")
    out = []
    for mask in masks:
        fitted = np.ascontiguousarray(_fit_mask(mask, height, width))
        left, top, box_width, box_height = cv2.boundingRect(fitted.view(np.uint8))
        if box_width == 0:
            out.append(InstancePosition(PositionStatus.NO_VALID_DEPTH))
            continue
        # Crop to the mask's box: the work is then proportional to the object, not to the image.
        bottom, right = top + box_height, left + box_width
        crop = Intrinsics(intrinsics.fx, intrinsics.fy, intrinsics.cx - left, intrinsics.cy - top,
                          right - left, bottom - top)
        out.append(_locate(depth[top:bottom, left:right], crop, fitted[top:bottom, left:right]))
    return out


@dataclass(order=True)
class DepthFrame:
    """A depth image (uint16 mm or float32 m) with its stamp (ns) and the intrinsics it pairs with (None:
    no camera info had arrived with it)."""

    stamp_ns: int
    depth: np.ndarray = field(compare=False)
    intrinsics: Intrinsics | None = field(compare=False)


class DepthPairing:
    """The last ``capacity`` depth frames, paired with a colour image by stamp (approximate time: the
    nearest within ``slop_s``). Thread-safe: the executor adds, the worker pairs, and may wait a little
    for a depth frame that has not arrived yet."""

    def __init__(self, capacity: int = 10) -> None:
        self.capacity = capacity
        self._frames: list[DepthFrame] = []  # sorted by stamp
        self._added = threading.Condition()

    def add(self, frame: DepthFrame) -> None:
        with self._added:
            bisect.insort(self._frames, frame)
            del self._frames[:-self.capacity]
            self._added.notify_all()

    def _nearest(self, stamp_ns: int, slop_ns: int) -> DepthFrame | None:
        best = min(self._frames, key=lambda f: abs(f.stamp_ns - stamp_ns), default=None)
        return best if best is not None and abs(best.stamp_ns - stamp_ns) <= slop_ns else None

    def pair(self, stamp_ns: int, slop_s: float, wait_s: float = 0.0) -> DepthFrame | None:
        """The depth frame nearest to ``stamp_ns`` within ``slop_s``, or None. While none is found and the
        newest depth frame is older than the colour image, by less than ``LIVE_STREAM_GAP_S`` (the depth
        stream is behind, not stopped), wait up to ``wait_s`` for one to arrive."""
        slop_ns = round(slop_s * 1e9)
        with self._added:
            frame = self._nearest(stamp_ns, slop_ns)
            behind = bool(self._frames) and 0 < stamp_ns - self._frames[-1].stamp_ns < LIVE_STREAM_GAP_S * 1e9
            if frame is None and wait_s > 0 and behind:
                self._added.wait_for(lambda: self._nearest(stamp_ns, slop_ns) is not None
                                     or self._frames[-1].stamp_ns >= stamp_ns + slop_ns, timeout=wait_s)
                frame = self._nearest(stamp_ns, slop_ns)
            return frame
