"""Autolabelling one input: teacher boxes per frame (cached) -> tracks -> box-seeded masks -> videos.

Teacher outputs are cached per frame in ``<cache>/<teacher hash>/<input key>/<frame>.npz`` (every
detection above a low score, so thresholds can change without rerunning the teacher), and so are the
masks of each frame's boxes (keyed by the boxes and the mask options): a rerun after an interruption, or
with other track options, resumes where the work was done.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mobileinst_ros.autolabel.box_masks import box_mask, resolve_overlaps
from mobileinst_ros.autolabel.sources import FrameSource
from mobileinst_ros.autolabel.teacher import Detections, Teacher
from mobileinst_ros.autolabel.tracks import TrackOptions, link_tracks
from mobileinst_ros.autolabel.writer import DatasetWriter

__all__ = ["DETECT_MIN_SCORE", "LabelOptions", "LabelStats", "label_source"]

DETECT_MIN_SCORE = 0.05  # what the cache keeps; linking thresholds apply later
MASKS_VERSION = 3  # part of the mask cache key: bump when box_mask changes


@dataclass(frozen=True)
class LabelOptions:
    width: int | None = None  # output frame size (None: the input's)
    height: int | None = None
    classes: tuple[str, ...] | None = None  # training classes to keep (None: all the teacher maps)
    track: TrackOptions = TrackOptions()
    max_side: int = 96  # GrabCut crop size
    clip_length: int = 0  # cut each input into videos of this many frames (0: one video)
    scene_cut: float = 0.0  # mean grey-level change (0-255) between frames that starts a new video (0: off)
    seed: int = 0


@dataclass
class LabelStats:
    frames: int = 0
    videos: int = 0
    tracks: Counter = field(default_factory=Counter)  # per class
    masks: Counter = field(default_factory=Counter)  # per method
    teacher_s: float = 0.0
    mask_s: float = 0.0
    cached_frames: int = 0
    cached_masks: int = 0

    def add(self, other: LabelStats) -> None:
        for name in ("frames", "videos", "teacher_s", "mask_s", "cached_frames", "cached_masks"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.tracks.update(other.tracks)
        self.masks.update(other.masks)


def _load_cached(path: Path) -> Detections | None:
    try:
        with np.load(path) as data:
            return Detections(data["boxes"], data["scores"], data["labels"])
    except (OSError, ValueError, KeyError):
        return None  # missing or damaged (interrupted write): compute again


def _save_atomic(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _output_size(rgb: np.ndarray, options: LabelOptions) -> tuple[int, int]:
    h, w = rgb.shape[:2]
    if options.width and options.height:
        return options.width, options.height
    if options.width:
        return options.width, round(h * options.width / w)
    return w, h


def _resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA) >= 0.5


def label_source(source: FrameSource, teacher: Teacher, writer: DatasetWriter, cache_dir: Path,
                 options: LabelOptions, progress: bool = True) -> LabelStats:
    """Label ``source`` into ``writer`` (frames, videos, tracks); return what was done."""
    stats = LabelStats()
    classes = list(options.classes or teacher.training_classes)
    keep_label = np.array([c in classes for c in teacher.training_classes])
    cache = Path(cache_dir) / teacher.hash / source.key
    cache.mkdir(parents=True, exist_ok=True)
    frames: list[Detections] = []
    name = source.name
    size = None
    segments: list[list[int]] = []  # [first, end) frame positions of each output video
    previous = None
    # Pass 1: teacher (cached) on the full-resolution frame; frames written at the output size. A new
    # video starts at a scene cut or after clip_length frames.
    for t, (index, rgb) in enumerate(tqdm(source.frames(), desc=f"{name}: teacher", unit="frame",
                                          disable=not progress)):
        path = cache / f"{index:07d}.npz"
        det = _load_cached(path)
        if det is None:
            start = time.perf_counter()
            det = teacher.detect(rgb, DETECT_MIN_SCORE)
            stats.teacher_s += time.perf_counter() - start
            _save_atomic(path, boxes=det.boxes, scores=det.scores, labels=det.labels)
        else:
            stats.cached_frames += 1
        out_w, out_h = _output_size(rgb, options)
        if size is None:
            size = (rgb.shape[1], rgb.shape[0], out_w, out_h)
        elif size[:2] != (rgb.shape[1], rgb.shape[0]):
            raise ValueError(f"{source.path}: frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, earlier frames "
                             f"{size[0]}x{size[1]}; label inputs of one frame size")
        sx, sy = out_w / rgb.shape[1], out_h / rgb.shape[0]
        keep = keep_label[det.labels] if len(det) else np.zeros(0, bool)
        frames.append(Detections(det.boxes[keep] * np.array([sx, sy, sx, sy], np.float32), det.scores[keep],
                                 np.array([classes.index(teacher.training_classes[l])
                                           for l in det.labels[keep]], np.int64)))
        small = rgb if (out_w, out_h) == rgb.shape[1::-1] else cv2.resize(rgb, (out_w, out_h),
                                                                          interpolation=cv2.INTER_AREA)
        thumb = cv2.cvtColor(cv2.resize(small, (64, 48), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        cut = (options.scene_cut > 0 and previous is not None
               and float(np.abs(thumb.astype(np.float32) - previous).mean()) > options.scene_cut)
        previous = thumb.astype(np.float32)
        if not segments or cut or (options.clip_length and t - segments[-1][0] >= options.clip_length):
            segments.append([t, t])
        segments[-1][1] = t + 1
        writer.write_frame(_video_name(name, len(segments) - 1, options), t - segments[-1][0], small)
    if not frames:
        raise ValueError(f"{source.path}: no frames selected (start {source.start}, step {source.step})")
    stats.frames = len(frames)
    out_w, out_h = size[2], size[3]
    # Tracks within each output video.
    tracks = []
    for first, end in segments:
        for track in link_tracks(frames[first:end], options.track):
            track.boxes = {first + t: b for t, b in track.boxes.items()}
            track.scores = {first + t: v for t, v in track.scores.items()}
            tracks.append(track)
    mask_key = hashlib.sha256(f"{MASKS_VERSION}|{options.max_side}|{out_w}x{out_h}|{options.seed}".encode()).hexdigest()[:8]
    masks_by_track: list[list[np.ndarray | None]] = [[None] * len(frames) for _ in tracks]
    methods_by_track: list[list[str | None]] = [[None] * len(frames) for _ in tracks]
    # Pass 2: masks of every track's box, frame by frame (cached), overlaps resolved by depth order.
    # GrabCut runs on the input frame (small objects keep their detail), masks are scaled to the output.
    in_w, in_h = size[0], size[1]
    to_input = np.array([in_w / out_w, in_h / out_h] * 2, np.float32)
    for t, (_, rgb) in enumerate(tqdm(source.frames(), desc=f"{name}: masks", unit="frame", total=len(frames),
                                      disable=not progress)):
        members = [k for k, tr in enumerate(tracks) if t in tr.boxes]
        if not members:
            continue
        boxes = np.stack([tracks[k].boxes[t] for k in members]).astype(np.float32)
        digest = hashlib.sha256(boxes.round(2).tobytes() + mask_key.encode()).hexdigest()[:12]
        path = cache / f"masks_{t:07d}_{digest}.npz"
        masks = methods = None
        try:
            with np.load(path) as data:
                masks = list(np.unpackbits(data["bits"], axis=1)[:, :out_h * out_w].reshape(-1, out_h, out_w)
                             .astype(bool))
                methods = [str(m) for m in data["methods"]]
            stats.cached_masks += 1
        except (OSError, ValueError, KeyError):
            start = time.perf_counter()
            made = [box_mask(rgb, b * to_input, max_side=options.max_side, seed=options.seed) for b in boxes]
            stats.mask_s += time.perf_counter() - start
            masks = resolve_overlaps([_resize_mask(m, out_w, out_h) for m, _ in made], boxes)
            methods = [m for _, m in made]
            bits = np.packbits(np.stack(masks).reshape(len(masks), -1), axis=1)
            _save_atomic(path, bits=bits, methods=np.array(methods))
        for k, mask, method in zip(members, masks, methods):
            masks_by_track[k][t] = mask
            # A box the teacher missed and the track interpolated says so in its method.
            methods_by_track[k][t] = method if t in tracks[k].scores else f"{method}-interpolated"
    # Videos and annotations.
    for number, (first, end) in enumerate(segments):
        video = _video_name(name, number, options)
        video_id = writer.add_video(video, end - first, out_h, out_w, source=str(source.path),
                                    source_frames=[source.start + source.step * t for t in (first, end - 1)])
        stats.videos += 1
        for k, track in enumerate(tracks):
            if not first <= min(track.boxes) < end:
                continue
            ann = writer.add_track(video_id, classes[track.label], masks_by_track[k][first:end],
                                   methods_by_track[k][first:end], score=round(track.mean_score, 4),
                                   teacher=teacher.spec.name)
            if ann is not None:
                stats.tracks[classes[track.label]] += 1
                stats.masks.update(m for m in methods_by_track[k][first:end] if m)
    return stats


def _video_name(name: str, number: int, options: LabelOptions) -> str:
    """Output video ``number`` of an input: its name, numbered where inputs are cut into several."""
    return f"{name}_{number:03d}" if options.clip_length or options.scene_cut else name
