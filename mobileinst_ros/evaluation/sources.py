"""Evaluation inputs: a rosbag2 (image topic + optional InstanceArray ground truth) or a YouTube-VIS dataset.

Either is read as sequences of (stamp, RGB image, ground truth) where ground truth is in the *model's*
class indices (matched by class name). A dataset is one sequence per video, each stamped at ``fps`` from a
fixed epoch, and the tracker starts afresh on each. A bag is one continuous stream for the tracker (what
a robot would see, scene cuts included); when it carries ``/ground_truth/sequence`` (bags made from a
dataset) the stream is cut into the dataset's videos for scoring, else it is one sequence.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobileinst_ros.data import bags
from mobileinst_ros.data.ytvis import VideoDataset, load_ytvis
from mobileinst_ros.evaluation.records import Detection, compress_counts, compress_mask
from mobileinst_ros.messages.instances import decode_instances

__all__ = ["COMPRESSED_IMAGE_TYPE", "InputError", "Source", "SourceFrame", "message_detections", "open_source"]

COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"


class InputError(ValueError):
    """An evaluation input that cannot be used as asked; the text names the input and the problem."""


@dataclass(frozen=True)
class SourceFrame:
    stamp_ns: int
    rgb: np.ndarray
    ground_truth: list[Detection] | None


@dataclass
class Source:
    """An opened input. ``sequences()`` re-reads it from the start on every call."""

    path: Path
    kind: str  # "bag" or "dataset"
    class_names: list[str]  # the model's classes; ground truth is mapped onto them
    frame_count: int
    has_ground_truth: bool
    image_topic: str = bags.IMAGE_TOPIC
    gt_topic: str | None = None
    fps: float = 10.0
    dataset: VideoDataset | None = None  # a dataset input, checked once at open (frames stay on disk)

    @property
    def reset_between_sequences(self) -> bool:
        """True where sequences are separate videos; a bag's sequences are parts of one stream."""
        return self.kind == "dataset"

    def sequences(self) -> Iterator[tuple[str, Iterator[SourceFrame]]]:
        """(name, frames) per sequence; consume each sequence's frames before asking for the next."""
        if self.kind == "dataset":
            yield from self._dataset_sequences()
            return
        names = _bag_sequence_names(self.path)
        yield from itertools.groupby(self._bag_frames(), key=lambda f: names.get(f.stamp_ns, self.path.name))

    def _bag_frames(self) -> Iterator[SourceFrame]:
        from mobileinst_ros.messages.images import ImageConversionError, compressed_to_rgb, image_to_rgb

        topics = bags.bag_topics(self.path)
        image_type = topics[self.image_topic][0]
        ground_truth = _bag_ground_truth(self.path, self.gt_topic, self.class_names) if self.gt_topic else {}
        for _, _, msg in bags.read_messages(self.path, {self.image_topic: image_type}):
            stamp = bags.stamp_ns(msg.header)
            try:
                rgb = compressed_to_rgb(msg) if image_type == COMPRESSED_IMAGE_TYPE else image_to_rgb(msg)
            except ImageConversionError as error:
                raise InputError(f"{self.path}: image on {self.image_topic} at stamp {stamp} ns: {error}") from None
            gt = ground_truth.get(stamp) if self.gt_topic else None
            yield SourceFrame(stamp, rgb, gt)

    def _dataset_sequences(self) -> Iterator[tuple[str, Iterator[SourceFrame]]]:
        dataset = self.dataset
        index = _class_map(dataset.classes, self.class_names, str(dataset.source), _used_classes(dataset))
        period = round(1e9 / self.fps)
        start = bags.DEFAULT_START_NS
        for v, video in enumerate(dataset.videos):
            yield video.name, self._video_frames(dataset, v, index, start, period)
            start += video.length * period

    def _video_frames(self, dataset: VideoDataset, video_index: int, index: dict[int, int], start: int,
                      period: int) -> Iterator[SourceFrame]:
        for t in range(dataset.videos[video_index].length):
            gt = [Detection(inst.track_id, index[inst.class_id], 1.0, compress_mask(inst.mask))
                  for inst in dataset.frame_instances(video_index, t)]
            yield SourceFrame(start + t * period, dataset.frame(video_index, t), gt)


def _load_dataset(path: Path) -> VideoDataset:
    """A dataset directory as evaluation reads it: frames from disk when needed (datasets can be larger
    than RAM), and no annotations required (frames to run a model on, ground truth empty)."""
    return load_ytvis(path, require_annotations=False, preload=False)


def _bag_sequence_names(path: Path) -> dict[int, str]:
    """Stamp -> dataset video name, from the bag's sequence topic (empty without one)."""
    if bags.SEQUENCE_TOPIC not in bags.bag_topics(path):
        return {}
    return {bags.stamp_ns(msg): msg.frame_id
            for _, _, msg in bags.read_messages(path, {bags.SEQUENCE_TOPIC: bags.HEADER_TYPE})}


def _used_classes(dataset: VideoDataset) -> set[int]:
    """Class indices of the dataset that some annotated instance has."""
    return {inst.label for video in dataset.videos for inst in video.instances}


def _class_map(gt_names: list[str], model_names: list[str], where: str, used: set[int]) -> dict[int, int]:
    """Ground-truth class index -> model class index, by name; unknown names in use are an error."""
    unknown = sorted(gt_names[i] for i in used if gt_names[i] not in model_names)
    if unknown:
        raise InputError(f"{where}: ground truth has classes the model does not know: {', '.join(unknown)} "
                         f"(model classes: {', '.join(model_names)})")
    return {i: model_names.index(n) for i, n in enumerate(gt_names) if n in model_names}


def message_detections(msg: Any, class_names: list[str], path: Path, topic: str,
                       score: float | None = None) -> tuple[list[Detection], list[str]]:
    """An InstanceArray (``topic`` of the bag ``path``) as Detections in the indices of ``class_names``
    (matched by name), and the class names it has that are not among them (their instances left out).
    ``score``: every detection's score (ground truth: 1.0); None keeps the message's."""
    try:
        instances = decode_instances(msg)
    except ValueError as error:
        raise InputError(f"{path}: {topic} at stamp {bags.stamp_ns(msg.header)} ns: {error}") from None
    detections, unknown = [], []
    for inst in instances:
        if inst.class_name not in class_names:
            unknown.append(inst.class_name)
            continue
        detections.append(Detection(inst.track_id, class_names.index(inst.class_name),
                                    inst.score if score is None else score,
                                    compress_counts(inst.rle, inst.height, inst.width)))
    return detections, unknown


def _bag_ground_truth(path: Path, topic: str, class_names: list[str]) -> dict[int, list[Detection]]:
    """Ground truth of a bag by header stamp, in model class indices (checked before any image is read)."""
    by_stamp: dict[int, list[Detection]] = {}
    unknown: set[str] = set()
    for _, _, msg in bags.read_messages(path, {topic: bags.INSTANCES_TYPE}):
        by_stamp[bags.stamp_ns(msg.header)], missing = message_detections(msg, class_names, path, topic, score=1.0)
        unknown.update(missing)
    if unknown:
        raise InputError(f"{path}: ground truth on {topic} has classes the model does not know: "
                         f"{', '.join(sorted(unknown))} (model classes: {', '.join(class_names)})")
    return by_stamp


def _open_bag(path: Path, class_names: list[str], image_topic: str, gt_topic: str | None,
              gt_required: bool) -> Source:
    topics = bags.bag_topics(path)
    if not topics or sum(count for _, count in topics.values()) == 0:
        raise InputError(f"{path}: the bag is empty (no messages)")
    if image_topic not in topics:
        listing = ", ".join(f"{t} [{m}]" for t, (m, _) in sorted(topics.items()))
        raise InputError(f"{path}: no image topic {image_topic}; the bag has: {listing} (choose one with --image-topic)")
    image_type, count = topics[image_topic]
    if image_type not in (bags.IMAGE_TYPE, COMPRESSED_IMAGE_TYPE):
        raise InputError(f"{path}: {image_topic} holds {image_type}, expected {bags.IMAGE_TYPE} or "
                         f"{COMPRESSED_IMAGE_TYPE}")
    if count == 0:
        raise InputError(f"{path}: {image_topic} has no messages")
    if gt_topic is not None and gt_topic not in topics:
        if gt_required:
            raise InputError(f"{path}: no ground-truth topic {gt_topic}")
        gt_topic = None
    if gt_topic is not None and topics[gt_topic][0] != bags.INSTANCES_TYPE:
        raise InputError(f"{path}: ground-truth topic {gt_topic} holds {topics[gt_topic][0]}, "
                         f"expected {bags.INSTANCES_TYPE}")
    if gt_topic is not None:
        _bag_ground_truth(path, gt_topic, class_names)  # fail on unknown classes before a long run
    duration_s = bags.bag_duration_ns(path) / 1e9
    fps = (count - 1) / duration_s if count > 1 and duration_s > 0 else 10.0  # for progress and the video only
    return Source(path, "bag", class_names, count, gt_topic is not None, image_topic, gt_topic, fps)


def open_source(path: str | Path, class_names: list[str], image_topic: str = bags.IMAGE_TOPIC,
                gt_topic: str | None = bags.GT_TOPIC, gt_required: bool = False, fps: float = 10.0) -> Source:
    """Open a bag (directory with metadata.yaml, or a .db3/.mcap file) or a dataset (annotations.json).

    Raises InputError / BagError / DatasetError with the path and what is wrong.
    """
    path = Path(path)
    if (path / "annotations.json").is_file():
        dataset = _load_dataset(path)
        _class_map(dataset.classes, class_names, str(dataset.source), _used_classes(dataset))
        return Source(path, "dataset", class_names, dataset.num_frames, True, fps=fps, dataset=dataset)
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise InputError(f"{path}: neither a rosbag2 bag (no metadata.yaml) nor a YouTube-VIS dataset "
                         f"(no annotations.json)")
    return _open_bag(path, class_names, image_topic, gt_topic, gt_required)
