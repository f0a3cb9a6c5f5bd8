"""The one codec of ``mobileinst_ros/InstanceArray``, for rclpy messages (the node) and ``rosbags``
messages (bags, evaluation): the same fields filled the same way, from the message classes of either
(``MessageTypes``: ``rclpy_types()`` here, ``data.bags.instance_types()`` for a bag's typestore).

    msg = instance_array(rclpy_types(), header, height, width, tracked_instances, class_names,
                         positions=positions, depth_stamp_ns=stamp)   # 3D: optional (depth fusion)
    for inst in decode_instances(msg):          # an rclpy or a rosbags message
        inst.track_id, inst.class_name, inst.mask()   # bool (height, width)
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mobileinst_ros.geometry.depth_fusion import InstancePosition, PositionStatus
from mobileinst_ros.masks import decode_mask, encode_mask, mask_bbox

__all__ = ["DecodedInstance", "InstanceLike", "MessageTypes", "decode_instance_masks", "decode_instances",
           "instance_array", "rclpy_types"]


class InstanceLike(Protocol):
    """One instance as the tracker hands it out (tracking.tracker.TrackedInstance) or a dataset holds it."""

    track_id: int
    class_id: int
    score: float
    mask: np.ndarray  # bool (height, width)


@dataclass(frozen=True)
class MessageTypes:
    """The message classes an InstanceArray is built from."""

    instance_array: Any
    instance: Any
    region_of_interest: Any
    point: Any
    vector3: Any
    time: Any


@functools.cache
def rclpy_types() -> MessageTypes:
    """rclpy's generated classes (imported on first use: bag tools need no built messages)."""
    from builtin_interfaces.msg import Time  # noqa: PLC0415
    from geometry_msgs.msg import Point, Vector3  # noqa: PLC0415
    from sensor_msgs.msg import RegionOfInterest  # noqa: PLC0415

    from mobileinst_ros.msg import Instance, InstanceArray  # noqa: PLC0415

    return MessageTypes(InstanceArray, Instance, RegionOfInterest, Point, Vector3, Time)


_NO_POSITION = InstancePosition(PositionStatus.NONE)


def _instance(types: MessageTypes, inst: InstanceLike, where: InstancePosition, height: int, width: int,
              class_names: list[str]) -> Any:
    if inst.mask.shape != (height, width):
        raise ValueError(f"track {inst.track_id}: mask shape {inst.mask.shape} is not {(height, width)}")
    class_id = int(inst.class_id)
    if not 0 <= class_id < len(class_names):
        raise ValueError(f"track {inst.track_id}: class_id {class_id} outside the {len(class_names)} classes")
    x, y, w, h = mask_bbox(inst.mask)
    roi = types.region_of_interest(x_offset=x, y_offset=y, height=h, width=w, do_rectify=False)
    x, y, z = where.position
    ex, ey, ez = where.extent
    return types.instance(track_id=int(inst.track_id), class_id=class_id, class_name=class_names[class_id],
                          score=float(inst.score), bbox=roi, mask_rle=encode_mask(inst.mask),
                          position_status=int(where.status), position=types.point(x=x, y=y, z=z),
                          extent=types.vector3(x=ex, y=ey, z=ez), distance=float(where.distance),
                          depth_pixels=int(where.pixels))


def instance_array(types: MessageTypes, header: Any, height: int, width: int, instances: Iterable[InstanceLike],
                   class_names: list[str], is_keyframe: bool = False, latency_ms: float = 0.0,
                   positions: Sequence[InstancePosition] | None = None, depth_stamp_ns: int = 0) -> Any:
    """An InstanceArray carrying ``header`` unchanged (the input image's stamp and frame_id); each mask
    must be (height, width) and each class_id index ``class_names`` (ValueError otherwise); bboxes are
    recomputed from the masks. ``positions`` (one per instance, from depth fusion) fill the 3D fields;
    without them every instance says POSITION_NONE."""
    height, width, instances = int(height), int(width), list(instances)
    if positions is None:
        positions = [_NO_POSITION] * len(instances)
    elif len(positions) != len(instances):
        raise ValueError(f"{len(positions)} positions for {len(instances)} instances")
    stamp = types.time(sec=depth_stamp_ns // 10**9, nanosec=depth_stamp_ns % 10**9)
    return types.instance_array(
        header=header, height=height, width=width, is_keyframe=bool(is_keyframe), latency_ms=float(latency_ms),
        depth_stamp=stamp,
        instances=[_instance(types, inst, where, height, width, class_names)
                   for inst, where in zip(instances, positions)])


@dataclass(frozen=True)
class DecodedInstance:
    """One instance read from an InstanceArray; ``rle`` is COCO uncompressed RLE (column-major)."""

    track_id: int
    class_id: int
    class_name: str
    score: float
    rle: np.ndarray
    height: int
    width: int

    def mask(self) -> np.ndarray:
        """The boolean (height, width) mask."""
        return decode_mask(self.rle, self.height, self.width)


def decode_instances(msg: Any) -> list[DecodedInstance]:
    """The instances of an InstanceArray (rclpy or rosbags); ValueError when a mask's runs do not sum to
    height * width."""
    height, width = int(msg.height), int(msg.width)
    out = []
    for inst in msg.instances:
        rle = np.asarray(inst.mask_rle, dtype=np.uint32)
        total = int(rle.sum(dtype=np.int64))
        if total != height * width:
            raise ValueError(f"track {inst.track_id}: mask_rle sums to {total}, "
                             f"expected height*width = {height}*{width}")
        out.append(DecodedInstance(int(inst.track_id), int(inst.class_id), str(inst.class_name),
                                   float(inst.score), rle, height, width))
    return out


def decode_instance_masks(msg: Any) -> list[np.ndarray]:
    """Every instance's mask as a boolean (height, width) array, in message order."""
    return [inst.mask() for inst in decode_instances(msg)]
