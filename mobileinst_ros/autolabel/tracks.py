"""Detections linked over frames into tracks: IoU cost, Hungarian assignment (scipy), per class.

A track may miss up to ``max_gap`` frames (the teacher blinks); the boxes of a gap are interpolated so
that the object stays labelled there. Tracks shorter than ``min_length`` detections or with a mean score
below ``min_mean_score`` are dropped: teacher false positives rarely persist.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from mobileinst_ros.autolabel.teacher import Detections

__all__ = ["Track", "TrackOptions", "box_iou", "link_tracks"]


@dataclass(frozen=True)
class TrackOptions:
    iou_threshold: float = 0.3  # least IoU to continue a track
    max_gap: int = 3  # frames a track may go undetected and continue
    min_length: int = 5  # least number of detected frames of a kept track
    min_mean_score: float = 0.4  # least mean teacher score of a kept track
    min_score: float = 0.25  # detections below this are not linked at all


@dataclass
class Track:
    """One object over frames: ``boxes[t]`` for frame positions ``t`` (detected or interpolated)."""

    label: int
    boxes: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)  # detected frames only
    last: int = -1

    @property
    def mean_score(self) -> float:
        return float(np.mean(list(self.scores.values()))) if self.scores else 0.0

    @property
    def detected(self) -> int:
        return len(self.scores)

    def interpolated(self) -> set[int]:
        return set(self.boxes) - set(self.scores)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of x1,y1,x2,y2 boxes."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def link_tracks(frames: list[Detections], options: TrackOptions = TrackOptions()) -> list[Track]:
    """Tracks over ``frames`` (position t = list index), filtered by the options, ordered by first frame."""
    active: list[Track] = []
    finished: list[Track] = []
    for t, det in enumerate(frames):
        sel = np.flatnonzero(det.scores >= options.min_score)
        boxes, scores, labels = det.boxes[sel], det.scores[sel], det.labels[sel]
        still = []
        for track in active:
            (still if t - track.last <= options.max_gap + 1 else finished).append(track)
        active = still
        matched = set()
        if active and len(boxes):
            last_boxes = np.stack([tr.boxes[tr.last] for tr in active])
            iou = box_iou(last_boxes, boxes)
            same = np.array([[tr.label == lb for lb in labels] for tr in active])
            cost = np.where(same & (iou >= options.iou_threshold), 1.0 - iou, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] >= 1e6:
                    continue
                track = active[r]
                gap = t - track.last
                for k in range(1, gap):  # interpolate the frames the teacher missed
                    w = k / gap
                    track.boxes[track.last + k] = (1 - w) * track.boxes[track.last] + w * boxes[c]
                track.boxes[t], track.scores[t], track.last = boxes[c].copy(), float(scores[c]), t
                matched.add(int(c))
        for c in range(len(boxes)):
            if c not in matched:
                active.append(Track(int(labels[c]), {t: boxes[c].copy()}, {t: float(scores[c])}, t))
    tracks = finished + active
    kept = [tr for tr in tracks if tr.detected >= options.min_length and tr.mean_score >= options.min_mean_score]
    return sorted(kept, key=lambda tr: (min(tr.boxes), tr.label))
