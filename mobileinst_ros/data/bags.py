"""rosbag2 files (sqlite3 or mcap) of camera images and instance masks, through ``rosbags``.

``rosbags`` is pure Python and needs no ROS install; its CDR bytes are rclpy's, so a bag written here
plays into a real ROS graph and a bag recorded from rclpy reads here. Messages are ``rosbags``
dataclasses built from the package's ``msg/*.msg`` (found next to the source tree, or in the installed
``share/mobileinst_ros/msg``); their fields are those of the rclpy messages.

Layout of a bag this project writes (``write_dataset_bag``):
- ``/camera/image_raw`` sensor_msgs/msg/Image, rgb8, frame_id ``camera``, stamps at ``fps``;
- ``/ground_truth/instances`` mobileinst_ros/msg/InstanceArray, same stamps; ``track_id`` is the
  YouTube-VIS annotation id, ``class_id`` indexes ``/ground_truth/classes``;
- ``/ground_truth/classes`` mobileinst_ros/msg/ModelInfo, once, latched: the category names;
- ``/ground_truth/sequence`` std_msgs/msg/Header, one per image with its stamp: ``frame_id`` is the
  name of the dataset video the image comes from.
Videos of a dataset follow one another in one continuous stream (a robot's tracker sees scene cuts);
the sequence topic lets an evaluation score each video on its own.
"""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from mobileinst_ros.messages.instances import InstanceLike, MessageTypes, instance_array

__all__ = [
    "BagError", "BagWriter", "CLASSES_TOPIC", "GT_TOPIC", "HEADER_TYPE", "IMAGE_TOPIC", "IMAGE_TYPE",
    "SEQUENCE_TOPIC", "header_message",
    "INSTANCES_TYPE", "MODEL_INFO_TYPE", "STORAGES", "bag_custom_data", "bag_duration_ns", "bag_topics", "image_message", "instance_array_message",
    "instance_types", "model_info_message", "read_messages", "typestore", "write_dataset_bag", "write_image_bag",
]

IMAGE_TOPIC = "/camera/image_raw"
GT_TOPIC = "/ground_truth/instances"
CLASSES_TOPIC = "/ground_truth/classes"
SEQUENCE_TOPIC = "/ground_truth/sequence"
HEADER_TYPE = "std_msgs/msg/Header"
IMAGE_TYPE = "sensor_msgs/msg/Image"
INSTANCES_TYPE = "mobileinst_ros/msg/InstanceArray"
MODEL_INFO_TYPE = "mobileinst_ros/msg/ModelInfo"
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
# A fixed epoch (2023-11-14) rather than the wall clock: the same dataset gives the same bag.
DEFAULT_START_NS = 1_700_000_000 * 10**9

_MESSAGES = ("Instance", "InstanceArray", "ModelInfo")
_LATCHED = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
               QosTime(0, 0), QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)


class BagError(Exception):
    """A bag that cannot be written or read as asked; the text names the bag and what is wrong."""


def _msg_dirs() -> list[Path]:
    source = Path(__file__).resolve().parents[2] / "msg"
    dirs = [source, Path(sys.prefix) / "share" / "mobileinst_ros" / "msg"]
    dirs += [Path(p) / "share" / "mobileinst_ros" / "msg"
             for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return dirs


@functools.lru_cache(maxsize=1)
def typestore() -> Typestore:
    """ROS 2 (Kilted) message types plus mobileinst_ros/msg/{Instance, InstanceArray, ModelInfo}."""
    store = get_typestore(Stores.ROS2_KILTED)
    for directory in _msg_dirs():
        if all((directory / f"{name}.msg").is_file() for name in _MESSAGES):
            break
    else:
        raise BagError("cannot find mobileinst_ros message definitions (Instance.msg, InstanceArray.msg, "
                       f"ModelInfo.msg) in any of: {', '.join(map(str, _msg_dirs()))}")
    types: dict = {}
    for name in _MESSAGES:
        types.update(get_types_from_msg((directory / f"{name}.msg").read_text(), f"mobileinst_ros/msg/{name}"))
    store.register(types)
    return store


def header_message(stamp_ns: int, frame_id: str) -> Any:
    """A std_msgs/msg/Header stamped ``stamp_ns``."""
    types = typestore().types
    stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def stamp_ns(header: Any) -> int:
    """A message header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def image_message(rgb: np.ndarray, stamp: int, frame_id: str = "camera") -> Any:
    """RGB uint8 (H, W, 3) as a sensor_msgs/msg/Image, rgb8, stamped ``stamp`` ns."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    return typestore().types[IMAGE_TYPE](
        header=header_message(stamp, frame_id), height=height, width=width, encoding="rgb8", is_bigendian=0,
        step=width * 3, data=np.ascontiguousarray(rgb).reshape(-1))


def instance_types() -> MessageTypes:
    """The typestore's classes for ``messages.instances.instance_array``."""
    types = typestore().types
    return MessageTypes(types[INSTANCES_TYPE], types["mobileinst_ros/msg/Instance"],
                        types["sensor_msgs/msg/RegionOfInterest"], types["geometry_msgs/msg/Point"],
                        types["geometry_msgs/msg/Vector3"], types["builtin_interfaces/msg/Time"])


def instance_array_message(stamp: int, height: int, width: int, instances: Iterable[InstanceLike],
                           class_names: list[str], frame_id: str = "camera", **fields: Any) -> Any:
    """``messages.instances.instance_array`` as a rosbags message with a header stamped ``stamp`` ns."""
    return instance_array(instance_types(), header_message(stamp, frame_id), height, width, instances, class_names,
                          **fields)


def model_info_message(stamp: int, class_names: list[str], model_name: str, input_size: tuple[int, int] = (0, 0),
                       keyframe_interval: int = 0) -> Any:
    """A ModelInfo; for ground truth it is just the class list (input size and interval 0)."""
    return typestore().types[MODEL_INFO_TYPE](
        header=header_message(stamp, ""), model_name=model_name, class_names=list(class_names),
        input_height=input_size[0], input_width=input_size[1], keyframe_interval=keyframe_interval)


class BagWriter:
    """Write messages to a new rosbag2 directory; topics are added on first use.

    >>> with BagWriter(path, storage="mcap") as bag:
    ...     bag.write(IMAGE_TOPIC, image_message(rgb, stamp), stamp)
    """

    def __init__(self, path: str | Path, storage: str = "sqlite3") -> None:
        self.path = Path(path)
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}; expected one of {', '.join(STORAGES)}")
        if self.path.exists():
            raise BagError(f"{self.path} already exists; a bag is written to a new directory")
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._connections: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._writer.close()

    def set_custom_data(self, key: str, value: str) -> None:
        """A string kept in metadata.yaml's ``custom_data`` (rosbag2 format version 6 and later)."""
        self._writer.set_custom_data(key, value)

    def write(self, topic: str, msg: Any, stamp: int, latched: bool = False) -> None:
        """Serialise ``msg`` (a rosbags message) to ``topic`` at receive time ``stamp`` ns."""
        self.write_raw(topic, msg.__msgtype__, typestore().serialize_cdr(msg, msg.__msgtype__), stamp, latched)

    def write_raw(self, topic: str, msgtype: str, data: bytes | memoryview, stamp: int,
                  latched: bool = False) -> None:
        """Write CDR bytes, e.g. from ``rclpy.serialization.serialize_message``."""
        connection = self._connections.get(topic)
        if connection is None:
            qos = [_LATCHED] if latched else []
            connection = self._writer.add_connection(topic, msgtype, typestore=typestore(),
                                                     offered_qos_profiles=qos)
            self._connections[topic] = connection
        elif connection.msgtype != msgtype:
            raise BagError(f"{self.path}: topic {topic} holds {connection.msgtype}, cannot also write {msgtype}")
        self._writer.write(connection, stamp, data)


def _open_reader(path: Path) -> Reader:
    if not path.exists():
        raise BagError(f"{path}: no such bag (expected a rosbag2 directory or a .db3/.mcap file)")
    try:
        reader = Reader(path)
        reader.open()
    # rosbags, sqlite3, mcap and yaml each raise their own types for a damaged file; all mean the same.
    except Exception as error:  # noqa: BLE001
        raise BagError(f"{path}: cannot read the bag: damaged, truncated or not rosbag2 "
                       f"({type(error).__name__}: {error})") from None
    return reader


def bag_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """Topic name -> (message type, message count) of a bag."""
    path = Path(path)
    reader = _open_reader(path)
    try:
        return {name: (info.msgtype or "", info.msgcount) for name, info in reader.topics.items()}
    finally:
        reader.close()


def bag_duration_ns(path: str | Path) -> int:
    """Time from the first to the last message of a bag, in nanoseconds (0 for fewer than two)."""
    reader = _open_reader(Path(path))
    try:
        return max(reader.end_time - reader.start_time - 1, 0) if reader.message_count > 1 else 0
    finally:
        reader.close()


def bag_custom_data(path: str | Path) -> dict[str, str]:
    """metadata.yaml's ``custom_data`` of a bag directory (empty for a bare .db3/.mcap file or none)."""
    metadata = Path(path) / "metadata.yaml"
    if not metadata.is_file():
        return {}
    try:
        info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise BagError(f"{metadata}: not rosbag2 metadata ({type(error).__name__}: {error})") from None
    return dict(info.get("custom_data") or {})


def _check_topics(path: Path, reader: Reader, wanted: Mapping[str, str]) -> None:
    if reader.message_count == 0:
        raise BagError(f"{path}: the bag is empty (no messages)")
    topics = reader.topics
    for topic, msgtype in wanted.items():
        listing = ", ".join(f"{t} [{i.msgtype}]" for t, i in sorted(topics.items())) or "none"
        if topic not in topics:
            raise BagError(f"{path}: no topic {topic}; the bag has: {listing}")
        if topics[topic].msgtype != msgtype:
            raise BagError(f"{path}: topic {topic} holds {topics[topic].msgtype}, expected {msgtype}")
        if topics[topic].msgcount == 0:
            raise BagError(f"{path}: topic {topic} has no messages")


def read_messages(path: str | Path, topics: Mapping[str, str]) -> Iterator[tuple[int, str, Any]]:
    """Yield (receive time ns, topic, decoded rosbags message) in time order for ``topics``.

    ``topics`` maps each topic to its expected type. Raises BagError for a missing bag, an unreadable
    or truncated file, an empty bag, a missing topic, a topic of another type or an undecodable message.
    """
    path = Path(path)
    reader = _open_reader(path)
    store = typestore()
    try:
        _check_topics(path, reader, topics)
        connections = [c for c in reader.connections if c.topic in topics]
        messages = reader.messages(connections=connections)
        while True:
            try:
                connection, timestamp, data = next(messages)
            except StopIteration:
                return
            except Exception as error:  # noqa: BLE001  (storage back ends raise assorted types)
                raise BagError(f"{path}: bag file is damaged or truncated ({type(error).__name__}: {error})") from None
            try:
                msg = store.deserialize_cdr(data, connection.msgtype)
            except Exception as error:  # noqa: BLE001  (the CDR decoder raises assorted types)
                raise BagError(f"{path}: message on {connection.topic} at {timestamp} ns is not a valid "
                               f"{connection.msgtype} ({type(error).__name__}: {error})") from None
            yield timestamp, connection.topic, msg
    finally:
        reader.close()


def write_dataset_bag(dataset_root: str | Path, bag_path: str | Path, fps: float = 10.0,
                      storage: str = "sqlite3", start_ns: int = DEFAULT_START_NS, progress: bool = False,
                      extra: Callable[[int, list], Iterable[tuple[str, Any]]] | None = None) -> int:
    """Write a YouTube-VIS dataset's frames and ground truth to a new bag; return the frame count.
    ``extra(stamp, ground-truth instances)`` may add (topic, rosbags message) pairs per frame (e.g. a
    depth image), written at the frame's stamp."""
    from tqdm import tqdm

    from mobileinst_ros.data.ytvis import load_ytvis

    if fps <= 0:
        raise BagError(f"fps must be positive, got {fps}")
    dataset = load_ytvis(dataset_root, require_annotations=False, preload=False)
    class_names = dataset.classes
    period = round(1e9 / fps)
    frame = 0
    with BagWriter(bag_path, storage) as bag:
        bag.write(CLASSES_TOPIC, model_info_message(start_ns, class_names, "ground_truth"), start_ns, latched=True)
        with tqdm(total=dataset.num_frames, desc="bag frames", unit="frame", disable=not progress) as bar:
            for v, video in enumerate(dataset.videos):
                for t in range(video.length):
                    stamp = start_ns + frame * period
                    bag.write(SEQUENCE_TOPIC, header_message(stamp, video.name), stamp)
                    bag.write(IMAGE_TOPIC, image_message(dataset.frame(v, t), stamp), stamp)
                    instances = dataset.frame_instances(v, t)
                    bag.write(GT_TOPIC, instance_array_message(stamp, video.height, video.width, instances,
                                                               class_names), stamp)
                    for topic, msg in extra(stamp, instances) if extra is not None else ():
                        bag.write(topic, msg, stamp)
                    frame += 1
                    bar.update()
    return frame


def write_image_bag(frames: Iterable[np.ndarray], bag_path: str | Path, fps: float = 10.0,
                    storage: str = "sqlite3", start_ns: int = DEFAULT_START_NS) -> int:
    """Write RGB uint8 frames (e.g. a video's) to a new bag as a camera at ``fps``, without ground
    truth; return the frame count."""
    if fps <= 0:
        raise BagError(f"fps must be positive, got {fps}")
    period, count = round(1e9 / fps), 0
    with BagWriter(bag_path, storage) as bag:
        for count, rgb in enumerate(frames, start=1):
            stamp = start_ns + (count - 1) * period
            bag.write(IMAGE_TOPIC, image_message(rgb, stamp), stamp)
    return count
