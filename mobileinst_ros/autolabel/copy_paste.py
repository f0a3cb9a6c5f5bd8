"""Copy-paste augmentation: labelled objects cut out with their masks and pasted, moving, into other
real scenes, giving new videos whose pasted masks are exact (the mask *is* the pasted pixels).

Objects come from labelled YouTube-VIS datasets (``mobileinst-autolabel label`` output): a run of
consecutive frames of one track whose masks came from GrabCut (not a fallback), large enough and not cut
by the frame border; pasted frame by frame, so a walking person keeps walking. Backgrounds are the frames
of other labelled datasets: a window of a video, or a still panned slowly; their own labels are kept,
minus what pasted objects cover. Each pasted object follows a smooth path (a drift plus a slow sway, a
gradual change of scale), the same for the whole clip; later objects occlude earlier ones.
Everything is drawn from ``numpy.random.default_rng([seed, video])``: deterministic by seed.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from mobileinst_ros.autolabel.box_masks import GRABCUT
from mobileinst_ros.autolabel.writer import DatasetWriter
from mobileinst_ros.data.ytvis import VideoDataset, decode_rle

__all__ = ["PasteOptions", "PasteSegment", "find_segments", "paste_videos"]

PASTED = "paste"
MAX_UPSCALE = 1.5  # a cut-out enlarged more than this looks blurred next to the background


@dataclass(frozen=True)
class PasteOptions:
    videos: int = 100
    frames: int = 12
    width: int = 384
    height: int = 288
    objects_min: int = 1
    objects_max: int = 4
    min_object_area: int = 400  # source mask pixels of a frame usable as a cut-out
    min_visible_area: int = 30  # pixels a (pasted or background) instance must keep to stay labelled
    scale_min: float = 0.2  # pasted object's longer side, as a fraction of the frame's height
    scale_max: float = 0.7
    seed: int = 0


@dataclass(frozen=True)
class PasteSegment:
    """Frames ``frames`` of annotation ``instance`` of ``video`` in dataset ``dataset``: a cut-out."""

    dataset: int
    video: int
    instance: int
    frames: tuple[int, ...]
    class_name: str


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def find_segments(datasets: list[VideoDataset], methods: list[dict[int, list[str | None]]],
                  options: PasteOptions, classes: list[str]) -> list[PasteSegment]:
    """Cut-outs: maximal runs of a track's frames with a GrabCut mask of at least ``min_object_area``
    pixels not touching the frame border. ``methods[d][annotation id]`` are the per-frame mask methods."""
    segments = []
    for d, dataset in enumerate(datasets):
        for v, video in enumerate(dataset.videos):
            for i, inst in enumerate(video.instances):
                name = dataset.classes[inst.label]
                if name not in classes:
                    continue
                used = methods[d].get(inst.id, [GRABCUT] * video.length)
                run: list[int] = []
                for t, rle in enumerate(inst.rles + [None]):
                    good = False
                    if rle is not None and used[t] == GRABCUT:
                        mask = decode_rle(rle)
                        good = mask.sum() >= options.min_object_area and not _touches_border(mask)
                    if good:
                        run.append(t)
                    elif run:
                        segments.append(PasteSegment(d, v, i, tuple(run), name))
                        run = []
    return segments


def _fit(rgb: np.ndarray, masks: list[np.ndarray], window: np.ndarray, width: int,
         height: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Crop ``window`` (x, y, w, h, floats) of a frame and its masks, scaled to width x height."""
    x, y, w, h = window
    matrix = np.array([[width / w, 0, -x * width / w], [0, height / h, -y * height / h]], np.float32)
    out = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    warped = [cv2.warpAffine(m.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR) >= 0.5
              for m in masks]
    return out, warped


def _cutout(dataset: VideoDataset, segment: PasteSegment, t: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB crop and bool mask crop of the segment's object in its frame ``t``."""
    video = dataset.videos[segment.video]
    rgb = dataset.frame(segment.video, t)
    mask = decode_rle(video.instances[segment.instance].rles[t]).astype(bool)
    ys, xs = np.nonzero(mask)
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return rgb[y1:y2, x1:x2], mask[y1:y2, x1:x2]


class _Path:
    """A pasted object's smooth path: centre, longer side in pixels, per frame."""

    def __init__(self, rng: np.random.Generator, options: PasteOptions) -> None:
        w, h, n = options.width, options.height, options.frames
        self.start = rng.uniform([0.1 * w, 0.25 * h], [0.9 * w, 0.9 * h])
        speed = rng.uniform(0.0, 0.025 * w)
        angle = rng.uniform(0, 2 * np.pi)
        self.velocity = speed * np.array([np.cos(angle), 0.35 * np.sin(angle)])
        self.sway = rng.uniform(0, 0.01 * w, 2)
        self.phase = rng.uniform(0, 2 * np.pi, 2)
        self.period = rng.uniform(n, 3 * n)
        self.size0 = rng.uniform(options.scale_min, options.scale_max) * h
        self.growth = rng.uniform(0.85, 1.18) ** (1 / max(n - 1, 1))
        self.flip = bool(rng.integers(2))

    def at(self, t: int) -> tuple[np.ndarray, float]:
        wobble = self.sway * np.sin(2 * np.pi * t / self.period + self.phase)
        return self.start + self.velocity * t + wobble, self.size0 * self.growth ** t


def _paste(canvas: np.ndarray, crop: np.ndarray, mask: np.ndarray, center: np.ndarray, size: float,
           flip: bool) -> np.ndarray:
    """Paste ``crop`` where ``mask``, scaled to longer side ``size`` at ``center``; returns the bool mask
    of the pasted pixels in canvas coordinates (exactly the pixels that changed source)."""
    height, width = canvas.shape[:2]
    scale = min(size / max(crop.shape[:2]), MAX_UPSCALE)
    cw, ch = max(round(crop.shape[1] * scale), 1), max(round(crop.shape[0] * scale), 1)
    crop = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR) >= 0.5
    if flip:
        crop, mask = crop[:, ::-1], mask[:, ::-1]
    x0, y0 = round(center[0] - cw / 2), round(center[1] - ch / 2)
    full = np.zeros((height, width), bool)
    sx1, sy1 = max(-x0, 0), max(-y0, 0)
    dx1, dy1 = max(x0, 0), max(y0, 0)
    dx2, dy2 = min(x0 + cw, width), min(y0 + ch, height)
    if dx2 <= dx1 or dy2 <= dy1:
        return full
    region = mask[sy1:sy1 + dy2 - dy1, sx1:sx1 + dx2 - dx1]
    target = canvas[dy1:dy2, dx1:dx2]
    target[region] = crop[sy1:sy1 + dy2 - dy1, sx1:sx1 + dx2 - dx1][region]
    full[dy1:dy2, dx1:dx2] = region
    return full


def _background_window(rng: np.random.Generator, video_w: int, video_h: int, options: PasteOptions,
                       still: bool) -> list[np.ndarray]:
    """Per output frame, the (x, y, w, h) window of the background frame to show: the output's aspect
    ratio, 70-100% of the frame; a still pans from one window to another."""
    aspect = options.width / options.height
    def window() -> np.ndarray:
        w = min(video_w, video_h * aspect) * rng.uniform(0.7, 1.0)
        h = w / aspect
        return np.array([rng.uniform(0, video_w - w), rng.uniform(0, video_h - h), w, h])
    first = window()
    last = window() if still else first
    n = options.frames
    return [first + (last - first) * (t / max(n - 1, 1)) for t in range(n)]


def paste_videos(objects: list[VideoDataset], object_methods: list[dict[int, list[str | None]]],
                 backgrounds: list[VideoDataset], background_methods: list[dict[int, list[str | None]]],
                 writer: DatasetWriter, options: PasteOptions, progress: bool = True) -> dict:
    """Write ``options.videos`` copy-paste videos into ``writer``; return statistics. ``*_methods[d]``
    map annotation ids of dataset ``d`` to their per-frame mask methods (``mask_methods`` in the JSON)."""
    classes = writer.classes
    segments = find_segments(objects, object_methods, options, classes)
    if not segments:
        raise ValueError("no object to paste: no track of the given classes has GrabCut masks of at least "
                         f"{options.min_object_area} pixels away from the frame border")
    by_class: dict[str, list[PasteSegment]] = defaultdict(list)
    for s in segments:
        by_class[s.class_name].append(s)
    # Classes drawn by the square root of their cut-out counts: rare classes more often than their share,
    # but not so often that their few cut-outs repeat in every video.
    names = sorted(by_class)
    class_weights = np.sqrt([len(by_class[n]) for n in names])
    class_weights /= class_weights.sum()
    pool = [(d, v) for d, ds in enumerate(backgrounds) for v in range(len(ds.videos))]
    if not pool:
        raise ValueError("no background video")
    stats = {"pasted": Counter(), "background_tracks": Counter(), "segments": Counter(s.class_name for s in segments)}
    for index in tqdm(range(options.videos), desc="copy-paste", unit="video", disable=not progress):
        rng = np.random.default_rng([options.seed, index])
        d, v = pool[int(rng.integers(len(pool)))]
        bg, video = backgrounds[d], backgrounds[d].videos[v]
        bg_methods = background_methods[d]
        still = video.length < options.frames
        start = 0 if still else int(rng.integers(video.length - options.frames + 1))
        windows = _background_window(rng, video.width, video.height, options, still)
        frames, tracks = [], {}
        for t in range(options.frames):
            source_t = 0 if still else start + t
            inst_masks = [decode_rle(i.rles[source_t]).astype(bool) if i.rles[source_t] is not None
                          else np.zeros((video.height, video.width), bool) for i in video.instances]
            rgb, warped = _fit(bg.frame(v, source_t), inst_masks, windows[t], options.width, options.height)
            frames.append(rgb)
            for inst, mask in zip(video.instances, warped):
                tracks.setdefault(("bg", inst.id), (bg.classes[inst.label], [None] * options.frames,
                                                    [None] * options.frames))
                tracks[("bg", inst.id)][1][t] = mask
                tracks[("bg", inst.id)][2][t] = bg_methods.get(inst.id, [GRABCUT] * video.length)[source_t]
        count = int(rng.integers(options.objects_min, options.objects_max + 1))
        for k in range(count):
            segment = by_class[names[int(rng.choice(len(names), p=class_weights))]]
            segment = segment[int(rng.integers(len(segment)))]
            path = _Path(rng, options)
            offset = int(rng.integers(len(segment.frames)))
            masks = []
            for t in range(options.frames):
                # Ping-pong through the segment's frames so that a short segment keeps moving.
                cycle = max(2 * len(segment.frames) - 2, 1)
                j = (offset + t) % cycle
                j = j if j < len(segment.frames) else cycle - j
                crop, mask = _cutout(objects[segment.dataset], segment, segment.frames[j])
                center, size = path.at(t)
                pasted = _paste(frames[t], crop, mask, center, size, path.flip)
                for _, earlier, _ in tracks.values():
                    if earlier[t] is not None:
                        earlier[t] = earlier[t] & ~pasted
                masks.append(pasted)
            tracks[("paste", k)] = (segment.class_name, masks, [PASTED] * options.frames)
        name = f"paste_{options.seed}_{index:05d}"
        for t, rgb in enumerate(frames):
            writer.write_frame(name, t, rgb)
        video_id = writer.add_video(name, options.frames, options.height, options.width,
                                    background=f"{bg.source.parent.name}/{video.name}")
        for (kind, _), (class_name, masks, methods) in tracks.items():
            if class_name not in classes:
                continue
            kept = [m if m is not None and m.sum() >= options.min_visible_area else None for m in masks]
            methods = [None if m is None else method for m, method in zip(kept, methods)]
            if writer.add_track(video_id, class_name, kept, methods) is not None:
                (stats["pasted"] if kind == "paste" else stats["background_tracks"])[class_name] += 1
    return stats
