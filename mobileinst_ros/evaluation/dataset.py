"""Torch-free reading of a YouTube-VIS dataset (docs/design.md layout) for evaluation and bag writing.

``<root>/annotations.json`` + ``<root>/JPEGImages/<file_names>``. Segmentations may be compressed
(``counts`` str) or uncompressed (``counts`` list) COCO RLE, or null. Every problem is a DatasetError
naming the file and the entry.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["Dataset", "DatasetError", "GroundTruthInstance", "Track", "Video", "load_dataset", "read_frame",
           "rle_to_mask"]


class DatasetError(ValueError):
    """A dataset that does not follow the YouTube-VIS layout; the text names the file and entry."""


@dataclass(frozen=True)
class Track:
    """One annotated object: ``class_id`` is the 0-based index into Dataset.class_names."""

    id: int
    class_id: int
    segmentations: list[dict | None]


@dataclass(frozen=True)
class Video:
    id: int
    name: str
    height: int
    width: int
    file_names: list[str]
    tracks: list[Track] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.file_names)


@dataclass(frozen=True)
class GroundTruthInstance:
    """A ground-truth object in one frame, shaped like a tracker's output (score 1)."""

    track_id: int
    class_id: int
    score: float
    mask: np.ndarray


@dataclass(frozen=True)
class Dataset:
    root: Path
    category_ids: list[int]  # dataset category id of each class index
    class_names: list[str]
    videos: list[Video]

    def frame_instances(self, video: Video, t: int) -> list[GroundTruthInstance]:
        """Visible ground-truth objects of frame ``t`` of ``video``."""
        return [GroundTruthInstance(track.id, track.class_id, 1.0,
                                    rle_to_mask(track.segmentations[t], video.height, video.width))
                for track in video.tracks if track.segmentations[t] is not None]


def rle_to_mask(segmentation: dict, height: int, width: int) -> np.ndarray:
    """A COCO RLE dict (compressed or uncompressed counts) as a boolean (height, width) mask."""
    rle = segmentation
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, height, width)
    elif isinstance(rle["counts"], str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def _require(entry: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise DatasetError(f"{where} lacks field(s) {', '.join(missing)}")


def _check_segmentation(seg: object, video: Video, where: str) -> None:
    if seg is None:
        return
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise DatasetError(f"{where}: expected a COCO RLE dict with 'size' and 'counts' or null, got {seg!r:.80}")
    if list(seg["size"]) != [video.height, video.width]:
        raise DatasetError(f"{where}: RLE size {seg['size']} is not the video's [{video.height}, {video.width}]")
    counts = seg["counts"]
    if isinstance(counts, list) and sum(counts) != video.height * video.width:
        raise DatasetError(f"{where}: RLE counts sum to {sum(counts)}, expected {video.height * video.width}")
    if not isinstance(counts, (list, str)):
        raise DatasetError(f"{where}: RLE counts must be a list or a string, got {type(counts).__name__}")


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (expected <dataset>/annotations.json)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level")
    _require(data, ("videos", "annotations", "categories"), str(path))
    return data


def _videos(data: dict, path: Path) -> dict[int, Video]:
    videos: dict[int, Video] = {}
    for i, entry in enumerate(data["videos"]):
        where = f"{path}: videos[{i}]"
        _require(entry, ("id", "file_names", "height", "width"), where)
        names = list(entry["file_names"])
        if not names:
            raise DatasetError(f"{where} has no file_names")
        name = entry.get("name") or names[0].split("/")[0]
        videos[int(entry["id"])] = Video(int(entry["id"]), str(name), int(entry["height"]), int(entry["width"]),
                                         names, [])
    return videos


def load_dataset(root: str | Path) -> Dataset:
    """Read and check ``<root>/annotations.json`` (frames are read later, by ``read_frame``)."""
    root = Path(root)
    path = root / "annotations.json"
    data = _load_json(path)
    categories = sorted(data["categories"], key=lambda c: int(c["id"]))
    for i, cat in enumerate(categories):
        _require(cat, ("id", "name"), f"{path}: categories[{i}]")
    class_index = {int(c["id"]): i for i, c in enumerate(categories)}
    videos = _videos(data, path)
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}] (id {ann.get('id')})"
        _require(ann, ("id", "video_id", "category_id", "segmentations"), where)
        video = videos.get(int(ann["video_id"]))
        if video is None:
            raise DatasetError(f"{where}: video_id {ann['video_id']} is not in videos")
        if int(ann["category_id"]) not in class_index:
            raise DatasetError(f"{where}: category_id {ann['category_id']} is not one of the categories "
                               f"{sorted(class_index)}")
        if len(ann["segmentations"]) != video.length:
            raise DatasetError(f"{where}: {len(ann['segmentations'])} segmentations for a video of "
                               f"{video.length} frames")
        for t, seg in enumerate(ann["segmentations"]):
            _check_segmentation(seg, video, f"{where} frame {t}")
        video.tracks.append(Track(int(ann["id"]), class_index[int(ann["category_id"])], list(ann["segmentations"])))
    return Dataset(root, [int(c["id"]) for c in categories], [str(c["name"]) for c in categories],
                   sorted(videos.values(), key=lambda v: v.id))


def read_frame(dataset: Dataset, video: Video, t: int) -> np.ndarray:
    """Frame ``t`` of ``video`` as RGB uint8 (height, width, 3)."""
    path = dataset.root / "JPEGImages" / video.file_names[t]
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"{path}: missing or not an image (video {video.name}, frame {t})")
    if bgr.shape[:2] != (video.height, video.width):
        raise DatasetError(f"{path}: image is {bgr.shape[1]}x{bgr.shape[0]}, the video says "
                           f"{video.width}x{video.height}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
