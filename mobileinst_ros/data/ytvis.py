"""YouTube-VIS-format datasets (2019/2021 layout, unchanged) loaded and checked: the one reader for
training, evaluation, bag writing and benchmarks. Torch-free, so the robot side can use it.

``load_ytvis(json_path, image_root)`` returns a ``VideoDataset``: videos with their frames' JPEG bytes
(read once, decoded on demand; or, with ``preload=False`` for big datasets, only their paths) and
instances with per-frame COCO RLE masks (compressed or uncompressed counts). ``json_path`` may be a
dataset directory (docs/design.md layout: ``<dir>/annotations.json``, ``<dir>/JPEGImages/``).
COCO-format image datasets load into the same structure (``coco.py``: one-frame videos).

Bad input raises ``DatasetError`` naming the file and the entry: invalid JSON, missing keys, wrong
types, unknown category or video ids, segmentations of the wrong size or count, missing images, and
a training set without a single usable annotation.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["DatasetError", "GroundTruthInstance", "Instance", "Video", "VideoDataset", "load_ytvis", "read_json",
           "decode_rle"]

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset file or entry is not what the loader expects (message names file and entry)."""


@dataclass
class Instance:
    """One annotated object track: ``rles[f]`` is a pycocotools RLE dict, or None where absent."""

    id: int
    label: int  # contiguous class index into VideoDataset.classes
    rles: list[dict | None]


@dataclass(frozen=True)
class GroundTruthInstance:
    """An annotated object in one frame, shaped like a tracker's output (score 1), so that message
    writers and evaluation take ground truth as they take predictions."""

    track_id: int
    class_id: int  # contiguous class index into VideoDataset.classes
    score: float
    mask: np.ndarray  # bool [H,W]


@dataclass
class Video:
    """One clip: frame JPEG bytes in RAM (``frames``) or paths only (``frame_paths``)."""

    id: int
    name: str
    height: int
    width: int
    frame_paths: list[Path]
    instances: list[Instance] = field(default_factory=list)
    frames: list[bytes] | None = None

    @property
    def length(self) -> int:
        return len(self.frame_paths)


@dataclass
class VideoDataset:
    """Videos plus the class list; ``category_ids[i]`` is the file's id of class index ``i``."""

    source: Path
    videos: list[Video]
    classes: list[str]
    category_ids: list[int]

    def frame(self, video_index: int, frame_index: int) -> np.ndarray:
        """RGB uint8 [H,W,3] of one frame (decoded from RAM when preloaded)."""
        video = self.videos[video_index]
        path = video.frame_paths[frame_index]
        if video.frames is not None:
            image = cv2.imdecode(np.frombuffer(video.frames[frame_index], np.uint8), cv2.IMREAD_COLOR)
        else:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{self.source}: video {video.id}: cannot decode image {path}")
        if image.shape[:2] != (video.height, video.width):
            raise DatasetError(f"{self.source}: video {video.id}: image {path} is {image.shape[1]}x{image.shape[0]}, "
                               f"annotations say {video.width}x{video.height}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def targets(self, video_index: int, frame_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Instances visible in one frame: (ids[M] int64, labels[M] int64, masks[M,H,W] uint8)."""
        video = self.videos[video_index]
        ids, labels, masks = [], [], []
        for inst in video.instances:
            rle = inst.rles[frame_index]
            if rle is None:
                continue
            mask = decode_rle(rle)
            if mask.any():
                ids.append(inst.id)
                labels.append(inst.label)
                masks.append(mask)
        stacked = np.stack(masks) if masks else np.zeros((0, video.height, video.width), np.uint8)
        return np.asarray(ids, np.int64), np.asarray(labels, np.int64), stacked

    def frame_instances(self, video_index: int, frame_index: int) -> list[GroundTruthInstance]:
        """``targets`` of one frame as one object per instance (for messages and evaluation records)."""
        ids, labels, masks = self.targets(video_index, frame_index)
        return [GroundTruthInstance(int(i), int(c), 1.0, m.astype(bool)) for i, c, m in zip(ids, labels, masks)]

    @property
    def num_frames(self) -> int:
        return sum(v.length for v in self.videos)

    @property
    def num_annotations(self) -> int:
        return sum(len(v.instances) for v in self.videos)


def decode_rle(rle: dict) -> np.ndarray:
    """pycocotools RLE dict (compressed or uncompressed counts) -> uint8 mask [H,W]."""
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    return mask_utils.decode(rle)


def read_json(path: Path) -> Any:
    """Parse a JSON file, naming the file (and position) on failure."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: annotation file not found") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e})") from None


def require(entry: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``entry[key]`` checked to be of ``kind``; ``where`` names file and entry for the error."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected an object, got {type(entry).__name__}")
    if key not in entry:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DatasetError(f"{where}: {key!r} must be {names}, got {type(value).__name__} {value!r:.60}")
    return value


def read_dataset_json(path: Path, entries: str) -> tuple[dict, tuple[list[str], list[int], dict[int, int]]]:
    """A COCO-style annotation file (``entries``: 'images' or 'videos') and its parsed categories."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with '{entries}', 'annotations', 'categories'")
    return data, parse_categories(data, path)


def parse_categories(data: dict, path: Path) -> tuple[list[str], list[int], dict[int, int]]:
    """categories[{id, name}] -> (names, ids, id -> contiguous index), sorted by id."""
    cats = require(data, "categories", list, f"{path}")
    if not cats:
        raise DatasetError(f"{path}: 'categories' is empty")
    by_id: dict[int, str] = {}
    for i, cat in enumerate(cats):
        where = f"{path}: categories[{i}]"
        cid = require(cat, "id", int, where)
        if cid in by_id:
            raise DatasetError(f"{where}: duplicate category id {cid}")
        by_id[cid] = str(require(cat, "name", str, where))
    ids = sorted(by_id)
    return [by_id[i] for i in ids], ids, {cid: k for k, cid in enumerate(ids)}


def check_rle(seg: Any, height: int, width: int, where: str) -> dict:
    """A segmentation entry must be an RLE dict {size: [h, w], counts: str | list[int]} of the frame's size."""
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise DatasetError(f"{where}: expected an RLE dict with 'size' and 'counts', got {str(seg)[:60]}")
    size = seg["size"]
    if list(size) != [height, width]:
        raise DatasetError(f"{where}: RLE size {size} does not match the frame size [{height}, {width}]")
    counts = seg["counts"]
    if isinstance(counts, list):
        if sum(counts) != height * width or any(c < 0 for c in counts):
            raise DatasetError(f"{where}: uncompressed RLE counts sum to {sum(counts)}, expected {height * width}")
    elif not isinstance(counts, str):
        raise DatasetError(f"{where}: RLE 'counts' must be a string or a list of ints")
    return seg


def check_images(videos: list[Video], path: Path, preload: bool, entry: str = "video") -> None:
    """Every frame file must exist; with ``preload`` read all of them into RAM. ``entry`` names a
    video's kind in errors ("video", or "image id" for COCO)."""
    for video in videos:
        frames = []
        for fp in video.frame_paths:
            if not fp.is_file():
                raise DatasetError(f"{path}: {entry} {video.id} ({video.name}): image file not found: {fp}")
            if preload:
                frames.append(fp.read_bytes())
        video.frames = frames if preload else None


def load_ytvis(json_path: str | Path, image_root: str | Path | None = None, require_annotations: bool = True,
               preload: bool = True) -> VideoDataset:
    """Load a YouTube-VIS 2019/2021 JSON (a directory: its ``annotations.json``); ``image_root`` defaults
    to ``<json dir>/JPEGImages``.

    With ``require_annotations`` (training, scoring) the file must hold at least one non-empty
    annotation; without it (e.g. the official valid.json, which has none, or frames to run a model
    on) videos load without instances. ``preload`` reads every frame file into RAM (training reads
    each many times); without it frames are read from disk when asked for.
    """
    path = Path(json_path)
    if path.is_dir():
        path = path / "annotations.json"
    root = Path(image_root) if image_root is not None else path.parent / "JPEGImages"
    data, (classes, category_ids, cat_index) = read_dataset_json(path, "videos")

    videos: dict[int, Video] = {}
    for i, entry in enumerate(require(data, "videos", list, str(path))):
        where = f"{path}: videos[{i}]"
        vid = require(entry, "id", int, where)
        where = f"{path}: video id {vid}"
        if vid in videos:
            raise DatasetError(f"{where}: duplicate video id")
        names = require(entry, "file_names", list, where)
        if not names or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"{where}: 'file_names' must be a non-empty list of strings")
        height, width = require(entry, "height", int, where), require(entry, "width", int, where)
        if height <= 0 or width <= 0:
            raise DatasetError(f"{where}: height and width must be positive, got {height}x{width}")
        if "length" in entry and entry["length"] != len(names):
            raise DatasetError(f"{where}: 'length' {entry['length']} != {len(names)} file_names")
        name = names[0].split("/")[0] if "/" in names[0] else str(vid)
        videos[vid] = Video(vid, str(entry.get("name", name)), height, width, [root / n for n in names])

    annotations = data.get("annotations")
    if annotations is None:
        annotations = []
    if not isinstance(annotations, list):
        raise DatasetError(f"{path}: 'annotations' must be a list, got {type(annotations).__name__}")
    empty_tracks = 0
    seen_ids: set[int] = set()
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        aid = require(ann, "id", int, where)
        where = f"{path}: annotation id {aid}"
        if aid in seen_ids:
            raise DatasetError(f"{where}: duplicate annotation id")
        seen_ids.add(aid)
        vid = require(ann, "video_id", int, where)
        if vid not in videos:
            raise DatasetError(f"{where}: unknown video_id {vid}")
        cid = require(ann, "category_id", int, where)
        if cid not in cat_index:
            raise DatasetError(f"{where}: unknown category_id {cid} (categories: {category_ids})")
        video = videos[vid]
        segs = require(ann, "segmentations", list, where)
        if len(segs) != video.length:
            raise DatasetError(f"{where}: {len(segs)} segmentations for a video of {video.length} frames")
        if ann.get("iscrowd", 0):
            continue  # crowd regions are not instances to match
        rles = [None if s is None else check_rle(s, video.height, video.width, f"{where}: segmentations[{f}]")
                for f, s in enumerate(segs)]
        if all(r is None for r in rles):
            empty_tracks += 1
            continue
        video.instances.append(Instance(aid, cat_index[cid], rles))

    if empty_tracks:
        log.warning("%s: %d annotations have no segmentation in any frame and were left out", path, empty_tracks)
    dataset = VideoDataset(path, list(videos.values()), classes, category_ids)
    if not dataset.videos:
        raise DatasetError(f"{path}: 'videos' is empty")
    if require_annotations and dataset.num_annotations == 0:
        raise DatasetError(f"{path}: no usable annotations ({len(annotations)} entries, {empty_tracks} empty): "
                           "nothing to train or evaluate on")
    check_images(dataset.videos, path, preload)
    return dataset
