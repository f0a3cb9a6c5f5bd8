"""``KernelTracker``: MobileInst's tracking by kernels with keyframes, kernel and feature reuse.

Every ``keyframe_interval`` (T) frames a keyframe runs the whole network: backbone, mask decoder,
instance decoder. Its kernels are associated with the tracks' kernels by cosine similarity
(``association.associate``): matched tracks keep their id, new instances start tracks (ids from 1),
unmatched tracks are kept ``max_track_age`` frames so that an instance that comes back is found again.

A non-keyframe reuses the last keyframe's kernels (the paper) and, with ``reuse_mode="features"`` (default),
also what of the mask decoder depends on its deep features x4, x5, x6 (the mask context): it runs only the
shallow backbone (to stride 8) and the mask decoder's stride-8 part, then masks = kernels x new mask
features for the instances of the last keyframe. ``reuse_mode="kernels"`` is
the paper's mode: a non-keyframe runs the whole backbone and mask decoder and skips only the instance
decoder (slower, masks from the frame's own deep features). With ``adaptive_keyframes`` a non-keyframe whose
reused masks collapse or swell (area ratio to the keyframe outside [area_ratio, 1/area_ratio]), lose
confidence (maskness down by ``maskness_drop``) or whose scene moved away from the keyframe's
(x3 pooled to the stride-64 grid changed by more than ``feature_change``, relative mean absolute
change; on the synthetic validation videos it is ~0.19 / 0.25 / 0.32 at 1 / 3 / 6 frames apart)
becomes a keyframe on the spot, reusing its own x3. ``non_keyframe_scale`` < 1 runs a non-keyframe's shallow
backbone on the image shrunk by that factor and upsamples its x3 to the keyframe's grid: cheaper (0.75: about
half the shallow graph's time), blurrier masks (docs/performance.md); a keyframe that a non-keyframe's trigger
calls for recomputes x3 at full size. With ``non_keyframe_crops`` (default) and masks split into parts, whose
masks on a non-keyframe are confined to windows around their last cells anyway, a non-keyframe runs the shallow
backbone only on crops around those windows, with enough context that the cells the masks read come out as on
the whole image (``Engine.shallow_in_windows``): the same masks, for work in proportion to the area followed,
and none at all when there is nothing to follow.

numpy only (the engine runs onnxruntime); no torch.
"""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from mobileinst_ros.masks import mask_bbox
from mobileinst_ros.runtime.engine import Detections, Engine, Features, NonFiniteOutputError, Prepared
from mobileinst_ros.runtime.postprocess import Rect, above_threshold, cell_iou, grow, grow_rect
from mobileinst_ros.tracking.association import associate

__all__ = ["TrackedInstance", "TrackedFrame", "KernelTracker", "REUSE_MODES"]

REUSE_MODES = ("features", "kernels")
# how far (stride-8 cells) a part of a split mask may move between two frames (Engine.split_components)
PART_MOTION_CELLS = 2
ASSOCIATION_THRESHOLD = 0.5  # least kernel cosine for a keyframe detection to continue a track
# cells of fresh x3 around a window for its mask features to come out as from a whole-image x3: 2 cells match them
# to 1% of their range on the shipped models, 1 cell to 12% in the window's outer ring, where a part moved at most
# (the same AP and HOTA to 0.1 on the held-out real and synthetic sets; 0 cells lost 1.2 AP50 on one: performance.md)
MASK_DECODER_CONTEXT_CELLS = 1

log = logging.getLogger(__name__)


@dataclass
class TrackedInstance:
    """One instance in one frame: ``bbox`` (x, y, w, h) in pixels, ``mask`` bool (H, W)."""

    track_id: int
    class_id: int
    score: float
    bbox: tuple[int, int, int, int]
    mask: np.ndarray


@dataclass
class TrackedFrame:
    """The result of one frame. ``keyframe_reason``: why it was a keyframe ('first', 'interval',
    'resolution', 'area', 'maskness', 'features'), '' otherwise. ``dropped``: the network produced
    NaN/inf, the frame has no instances and the tracker's state is unchanged."""

    instances: list[TrackedInstance]
    is_keyframe: bool
    latency_ms: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    keyframe_reason: str = ""
    dropped: bool = False


@dataclass
class _Track:
    track_id: int
    kernel: np.ndarray
    class_id: int
    query_score: float
    cells: int          # mask area at the keyframe, stride-8 cells
    maskness: float     # at the keyframe
    last_seen: int      # frame index of the last keyframe that matched it
    region: np.ndarray | None = None  # bool stride-8 cells of its last mask, where masks are split into parts


class _Clock:
    """Accumulates wall time per stage."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.mark = self.start
        self.timings: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self.mark) * 1000.0
        self.mark = now

    def total(self) -> float:
        return (time.perf_counter() - self.start) * 1000.0


def _scene_descriptor(x3: np.ndarray) -> np.ndarray:
    """x3 [1, C, h, w] averaged over 8 x 8 cells (the stride-64 grid): robust to pixel noise and small
    motion, which change x3 itself by ~70% between consecutive frames of the synthetic videos."""
    c, h, w = x3.shape[1:]
    gh, gw = -(-h // 8), -(-w // 8)
    padded = np.zeros((c, gh * 8, gw * 8), np.float32)
    padded[:, :h, :w] = x3[0]
    return padded.reshape(c, gh, 8, gw, 8).mean(axis=(2, 4))


def _relative_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean() / max(float(np.abs(b).mean()), 1e-6))


def _area(rect: Rect) -> int:
    return max(0, rect[2] - rect[0]) * max(0, rect[3] - rect[1])


def _merge_crops(rects: list[Rect], grid: tuple[int, int], context: int) -> list[Rect]:
    """Two rectangles become their bounding one wherever the shallow backbone costs no more on that (with its
    ``context`` cells) than on both: it costs in proportion to the area run, overlaps run twice."""
    rects = [r for r in rects if _area(r)]
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(rects)), 2):
            a, b = rects[i], rects[j]
            union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
            if _area(grow_rect(union, context, grid)) <= \
                    _area(grow_rect(a, context, grid)) + _area(grow_rect(b, context, grid)):
                rects[i] = union
                del rects[j]
                merged = True
                break
    return rects


class KernelTracker:
    """Video instance segmentation with track ids on top of an ``Engine``. The thresholds and
    ``keyframe_interval`` are attributes: change them between frames."""

    def __init__(self, engine: Engine, keyframe_interval: int = 3,
                 association_threshold: float = ASSOCIATION_THRESHOLD,
                 max_track_age: int = 30, adaptive_keyframes: bool = False, area_ratio: float = 0.5,
                 maskness_drop: float = 0.15, feature_change: float = 0.35, reuse_mode: str = "features",
                 non_keyframe_scale: float = 1.0, non_keyframe_crops: bool = True) -> None:
        self.engine = engine
        self.non_keyframe_crops = non_keyframe_crops
        self.keyframe_interval = keyframe_interval
        self.reuse_mode = reuse_mode
        self.non_keyframe_scale = non_keyframe_scale
        self.association_threshold = association_threshold
        self.max_track_age = max_track_age
        self.adaptive_keyframes = adaptive_keyframes
        self.area_ratio = area_ratio
        self.maskness_drop = maskness_drop
        self.feature_change = feature_change
        self.reset()

    @property
    def keyframe_interval(self) -> int:
        return self._keyframe_interval

    @keyframe_interval.setter
    def keyframe_interval(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"keyframe_interval must be >= 1, got {value}")
        self._keyframe_interval = int(value)

    @property
    def reuse_mode(self) -> str:
        return self._reuse_mode

    @reuse_mode.setter
    def reuse_mode(self, value: str) -> None:
        if value not in REUSE_MODES:
            raise ValueError(f"reuse_mode must be one of {REUSE_MODES}, got {value!r}")
        self._reuse_mode = value

    @property
    def non_keyframe_scale(self) -> float:
        return self._non_keyframe_scale

    @non_keyframe_scale.setter
    def non_keyframe_scale(self, value: float) -> None:
        reason = self.scale_refusal(value)
        if reason:
            raise ValueError(reason)
        self._non_keyframe_scale = float(value)

    def scale_refusal(self, value: float) -> str | None:
        """Why ``non_keyframe_scale`` cannot be ``value`` with this engine's graphs (None: it can)."""
        if not 0.0 < float(value) <= 1.0:
            return f"non_keyframe_scale must be in (0, 1], got {value}"
        if float(value) < 1.0 and not self.engine.shallow_any_size():
            return ("non_keyframe_scale < 1 needs shallow graphs that take any size (the shared-shape export), "
                    "not a per-resolution export")
        return None

    def reset(self) -> None:
        """Forget all tracks and cached features; the next frame is a keyframe, ids restart at 1."""
        self._tracks: list[_Track] = []
        self._active: list[_Track] = []   # the last keyframe's instances, reused until the next one
        self._kf_features: Features | None = None
        self._kf_descriptor: np.ndarray | None = None
        self._frame = 0
        self._since_keyframe = 0
        self._next_id = 1

    def process(self, image: np.ndarray) -> TrackedFrame:
        """One RGB uint8 (H, W, 3) frame -> TrackedFrame. Bad images raise ``ImageError``; NaN/inf
        network outputs drop the frame (warning) and leave the tracker as it was."""
        clock = _Clock()
        prepared = self.engine.prepare(image)
        reason = self._scheduled_reason(prepared)
        if reason or self.non_keyframe_scale == 1.0:
            _ = prepared.tensor  # letterboxed here, so that "preprocess" times it
        clock.lap("preprocess")
        try:
            if reason:
                instances = self._keyframe(prepared, clock, reason)
            else:
                instances, reason = self._non_keyframe(prepared, clock)
        except NonFiniteOutputError as err:
            log.warning("frame %d dropped: %s", self._frame, err)
            return TrackedFrame([], False, clock.total(), clock.timings, dropped=True)
        self._frame += 1
        return TrackedFrame(instances, bool(reason), clock.total(), clock.timings, reason)

    def _scheduled_reason(self, prepared: Prepared) -> str:
        if self._kf_features is None:
            return "first"
        if self._kf_features.resolution != prepared.resolution:
            return "resolution"
        if self._since_keyframe + 1 >= self.keyframe_interval:
            return "interval"
        return ""

    def _keyframe(self, prepared: Prepared, clock: _Clock, reason: str, x3: np.ndarray | None = None,
                  features: Features | None = None) -> list[TrackedInstance]:
        if features is None:
            features = (self.engine.keyframe_features(prepared) if x3 is None
                        else self.engine.deep_features(prepared.resolution, x3))
        clock.lap("backbone")
        decoded = self.engine.decode(features)
        clock.lap("instance_decoder")
        det = self.engine.select(decoded, features, prepared.geometry)
        masks, boxes = self.engine.to_image(det.mask_logits, prepared.geometry)
        clock.lap("postprocess")
        active = self._associate(det)
        self._kf_features = features
        self._kf_descriptor = None  # computed when an adaptive check first needs it
        self._since_keyframe = 0
        instances = [TrackedInstance(t.track_id, t.class_id, float(s), box, m)
                     for t, s, m, box in zip(active, det.scores, masks, boxes) if box[2]]
        clock.lap("tracking")
        return instances

    def _associate(self, det: Detections) -> list[_Track]:
        """Update the tracks with a keyframe's detections; returns the track of each detection."""
        kernels = (np.stack([t.kernel for t in self._tracks]) if self._tracks
                   else np.zeros((0, det.kernels.shape[1]), np.float32))
        parts = above_threshold(det.mask_logits, self.engine.mask_threshold) if self.engine.split_components \
            else None
        result = associate(self.engine.appearance(kernels), self.engine.appearance(det.kernels),
                           self.association_threshold, None if parts is None else self._overlap(parts))
        owner = {int(d): self._tracks[int(t)] for t, d in result.matches}
        active = []
        for d in range(len(det.kernels)):
            track = owner.get(d)
            if track is None:
                track = _Track(self._next_id, det.kernels[d], 0, 0.0, 0, 0.0, self._frame)
                self._next_id += 1
                self._tracks.append(track)
            track.kernel = det.kernels[d]
            track.class_id = int(det.class_ids[d])
            track.query_score = float(det.query_scores[d])
            track.cells = int(det.cells[d])
            track.maskness = float(det.maskness[d])
            track.last_seen = self._frame
            track.region = None if parts is None else parts[d]
            active.append(track)
        self._tracks = [t for t in self._tracks if self._frame - t.last_seen <= self.max_track_age]
        self._active = active
        return active

    def _overlap(self, parts: np.ndarray) -> np.ndarray:
        """IoU [T, N] of the tracks' last masks with the detections' bool stride-8 masks ``parts`` [N, h, w];
        1 (no constraint) for a track without a mask of that grid."""
        overlap = np.ones((len(self._tracks), len(parts)))
        rows = [i for i, t in enumerate(self._tracks) if t.region is not None and t.region.shape == parts.shape[1:]]
        if rows:
            overlap[rows] = cell_iou(np.stack([self._tracks[i].region for i in rows]), parts)
        return overlap

    def _non_keyframe(self, prepared: Prepared, clock: _Clock) -> tuple[list[TrackedInstance], str]:
        crops = self._crops(prepared.resolution)
        if crops is None:
            x3 = self.engine.shallow_scaled(prepared, self.non_keyframe_scale)
        else:
            x3 = self.engine.shallow_in_windows(prepared, self._kf_features.x3, crops)
        own_x3 = self.non_keyframe_scale == 1.0 and crops is None  # else a keyframe computes its own, in full
        trigger = self._feature_trigger(x3)  # before the mask decoder: a keyframe would redo it
        if trigger:
            clock.lap("backbone")
            return self._keyframe(prepared, clock, trigger, x3 if own_x3 else None), trigger
        if not self._active:
            clock.lap("backbone")
            self._since_keyframe += 1
            return [], ""
        if self.reuse_mode == "kernels":
            features = self.engine.deep_features(prepared.resolution, x3)
        else:
            features = self.engine.reuse_features(prepared, self._kf_features, x3)
        clock.lap("backbone")
        kernels = np.stack([t.kernel for t in self._active])
        regions = self._part_windows(features.mask_features.shape[2:])
        logits, mness, cells = self.engine.reuse_masks(kernels, features, prepared.geometry, regions)
        if regions is not None:
            for track, now in zip(self._active, above_threshold(logits, self.engine.mask_threshold)):
                if track.region is not None and now.any():
                    track.region = now
        clock.lap("postprocess")
        trigger = self._mask_trigger(mness, cells)
        if trigger:
            own = features if self.reuse_mode == "kernels" and own_x3 else None  # this frame's full features
            return self._keyframe(prepared, clock, trigger, features.x3 if own_x3 else None, own), trigger
        masks, boxes = self.engine.to_image(logits, prepared.geometry)
        clock.lap("postprocess")
        instances = [TrackedInstance(t.track_id, t.class_id, t.query_score * float(mk), box, m)
                     for t, mk, m, box in zip(self._active, mness, masks, boxes) if box[2]]
        self._since_keyframe += 1
        clock.lap("tracking")
        return instances, ""

    def _crops(self, resolution: tuple[int, int]) -> list[Rect] | None:
        """Where a non-keyframe recomputes x3 (``Engine.shallow_in_windows``): around each active part's window,
        the cells its mask features read, as rectangles merged where one costs no more than two. None where the
        whole image must run: crops off, a shrunk or paper-mode non-keyframe, adaptive keyframes (the feature
        trigger compares whole images), a whole mask (no window), graphs of one size, a shallow graph with no
        finite context (``Engine.shallow_context``), or crops that would cover the image anyway."""
        if not self.non_keyframe_crops or self.non_keyframe_scale != 1.0 or self.reuse_mode != "features" \
                or self.adaptive_keyframes or any(t.region is None for t in self._active) \
                or not self.engine.shallow_any_size():
            return None
        context = self.engine.shallow_context(resolution)
        if context is None:
            return None
        stride = self.engine.mask_stride
        grid = (resolution[1] // stride, resolution[0] // stride)
        reach = PART_MOTION_CELLS + MASK_DECODER_CONTEXT_CELLS
        rects = []
        for track in self._active:
            x, y, w, h = mask_bbox(track.region)
            if w:
                rects.append(grow_rect((y, x, y + h, x + w), reach, grid))
        rects = _merge_crops(rects, grid, context)
        cost = sum(_area(grow_rect(r, context, grid)) for r in rects)
        return rects if cost < grid[0] * grid[1] else None

    def _part_windows(self, grid: tuple[int, int]) -> np.ndarray | None:
        """Where each active part may be on this frame: its last cells grown by ``PART_MOTION_CELLS``
        (everywhere for a whole mask); None when no active track is a part."""
        if all(t.region is None for t in self._active):
            return None
        return np.stack([grow(t.region[None], PART_MOTION_CELLS)[0] if t.region is not None
                         else np.ones(grid, bool) for t in self._active])

    def _feature_trigger(self, x3: np.ndarray) -> str:
        if not self.adaptive_keyframes:
            return ""
        if self._kf_descriptor is None:
            self._kf_descriptor = _scene_descriptor(self._kf_features.x3)
        if _relative_change(_scene_descriptor(x3), self._kf_descriptor) > self.feature_change:
            return "features"
        return ""

    def _mask_trigger(self, mness: np.ndarray, cells: np.ndarray) -> str:
        if not self.adaptive_keyframes:
            return ""
        base = np.array([max(t.cells, 1) for t in self._active], np.float64)
        ratio = cells / base
        if np.any((ratio < self.area_ratio) | (ratio > 1.0 / self.area_ratio)):
            return "area"
        if np.any(mness < np.array([t.maskness for t in self._active]) - self.maskness_drop):
            return "maskness"
        return ""
