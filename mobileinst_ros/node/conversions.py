"""Between masks/tracked instances and the package's messages (rclpy message classes).

Shared by the node, the demo and the tests so that there is one encoding of an InstanceArray.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from mobileinst_ros.masks import decode_mask, encode_mask, mask_bbox
from mobileinst_ros.msg import Instance, InstanceArray


class InstanceLike(Protocol):
    """What the tracker hands out per instance (see tracking.tracker.TrackedInstance)."""

    track_id: int
    class_id: int
    score: float
    mask: np.ndarray


def instance_msg(instance: InstanceLike, class_names: list[str]) -> Instance:
    """One tracked instance as an Instance message; bbox is recomputed from the mask."""
    x, y, w, h = mask_bbox(instance.mask)
    class_id = int(instance.class_id)
    return Instance(
        track_id=int(instance.track_id),
        class_id=class_id,
        class_name=class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id),
        score=float(instance.score),
        bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False),
        mask_rle=encode_mask(instance.mask),
    )


def instance_array_msg(header: Header, height: int, width: int, instances: Iterable[InstanceLike],
                       class_names: list[str], is_keyframe: bool = True,
                       latency_ms: float = 0.0) -> InstanceArray:
    """An InstanceArray carrying ``header`` unchanged (the input image's stamp and frame_id)."""
    return InstanceArray(
        header=header, height=int(height), width=int(width), is_keyframe=bool(is_keyframe),
        latency_ms=float(latency_ms),
        instances=[instance_msg(instance, class_names) for instance in instances],
    )


def decode_instance_masks(msg: InstanceArray) -> list[np.ndarray]:
    """Every instance's mask as a boolean (height, width) array, in message order."""
    return [decode_mask(np.asarray(inst.mask_rle), msg.height, msg.width) for inst in msg.instances]
