"""Unlabelled frames to label: a rosbag2 image topic, a video file, or a folder of images.

``open_frames(path, ...)`` returns a ``FrameSource`` whose ``frames()`` yields (index, RGB uint8) in order.
``key`` identifies the input's content (path, size, modification time, selection) for the teacher
cache. Bad input raises ``SourceError`` naming the input and the frame.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["FrameSource", "IMAGE_SUFFIXES", "SourceError", "VIDEO_SUFFIXES", "open_frames"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class SourceError(ValueError):
    """An input that cannot be read as frames; the text names the input and what is wrong."""


@dataclass
class FrameSource:
    """Frames ``start``, ``start + step``, ... (at most ``max_frames``) of one input."""

    path: Path
    kind: str  # "bag", "video" or "images"
    topic: str | None = None
    start: int = 0
    step: int = 1
    max_frames: int | None = None
    image_paths: list[Path] | None = None

    @property
    def name(self) -> str:
        stem = self.path.stem if self.path.is_file() else self.path.name
        return stem.replace(" ", "_") or "input"

    @property
    def key(self) -> str:
        """Content key for the cache: the input's identity and the frame selection."""
        files = self.image_paths if self.kind == "images" else [p for p in [self.path] if p.is_file()] or \
            sorted(p for p in self.path.rglob("*") if p.is_file())
        parts = [str(self.path.resolve()), self.kind, str(self.topic), str(self.start), str(self.step),
                 str(self.max_frames)]
        parts += [f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in files]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def _selected(self, index: int) -> bool:
        return index >= self.start and (index - self.start) % self.step == 0

    def _within(self, count: int) -> bool:
        return self.max_frames is None or count < self.max_frames

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(source frame index, RGB uint8 [H,W,3]) of the selected frames."""
        if self.kind == "images":
            yield from self._image_frames()
        elif self.kind == "video":
            yield from self._video_frames()
        else:
            yield from self._bag_frames()

    def _image_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        count = 0
        for index, path in enumerate(self.image_paths or []):
            if not self._selected(index):
                continue
            if not self._within(count):
                return
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"{path}: cannot read the image (damaged or not an image)")
            count += 1
            yield index, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _video_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise SourceError(f"{self.path}: cannot open the video (damaged or an unknown format)")
        index, count = 0, 0
        try:
            while self._within(count):
                ok, frame = capture.read()
                if not ok:
                    if index == 0:
                        raise SourceError(f"{self.path}: no readable frame in the video")
                    return
                if self._selected(index):
                    count += 1
                    yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()

    def _bag_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        from mobileinst_ros.data import bags
        from mobileinst_ros.messages.images import ImageConversionError, compressed_to_rgb, image_to_rgb

        try:
            topics = bags.bag_topics(self.path)
        except bags.BagError as error:
            raise SourceError(str(error)) from None
        listing = ", ".join(f"{t} [{m}]" for t, (m, _) in sorted(topics.items())) or "none"
        if self.topic not in topics:
            raise SourceError(f"{self.path}: no topic {self.topic}; the bag has: {listing}")
        msgtype = topics[self.topic][0]
        if msgtype not in IMAGE_TYPES:
            raise SourceError(f"{self.path}: topic {self.topic} holds {msgtype}, not an image type "
                              f"({', '.join(IMAGE_TYPES)})")
        count = 0
        try:
            for index, (_, _, msg) in enumerate(bags.read_messages(self.path, {self.topic: msgtype})):
                if not self._selected(index):
                    continue
                if not self._within(count):
                    return
                try:
                    rgb = compressed_to_rgb(msg) if msgtype.endswith("CompressedImage") else image_to_rgb(msg)
                except ImageConversionError as error:
                    raise SourceError(f"{self.path}: message {index} on {self.topic}: {error}") from None
                count += 1
                yield index, rgb
        except bags.BagError as error:
            raise SourceError(str(error)) from None


def _is_bag(path: Path) -> bool:
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix in (".db3", ".mcap")


def open_frames(path: str | Path, topic: str | None = None, start: int = 0, step: int = 1,
                max_frames: int | None = None) -> FrameSource:
    """The frames of ``path``: a rosbag2 (directory with metadata.yaml, or a .db3/.mcap file; ``topic``
    needed), a video file, or a folder of images (sorted by name)."""
    path = Path(path)
    if step < 1 or start < 0 or (max_frames is not None and max_frames < 1):
        raise SourceError(f"{path}: frame selection start={start} step={step} max_frames={max_frames} is invalid")
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    if _is_bag(path):
        if not topic:
            raise SourceError(f"{path}: a rosbag input needs --topic (an image topic of the bag)")
        return FrameSource(path, "bag", topic, start, step, max_frames)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SourceError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) and no rosbag metadata.yaml")
        return FrameSource(path, "images", None, start, step, max_frames, images)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return FrameSource(path, "video", None, start, step, max_frames)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FrameSource(path, "images", None, start, step, max_frames, [path])
    raise SourceError(f"{path}: not a rosbag2, a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of images")
