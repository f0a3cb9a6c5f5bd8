"""One InstanceArray codec (messages/instances.py): the node's rclpy messages and the bags' rosbags
messages come out of the same code, field for field, 3D fields included."""
from types import SimpleNamespace

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from std_msgs.msg import Header

from mobileinst_ros.data import bags
from mobileinst_ros.geometry.depth_fusion import InstancePosition, PositionStatus
from mobileinst_ros.messages.instances import decode_instances, instance_array, rclpy_types
from mobileinst_ros.msg import Instance

STAMP = 1_700_000_000_123_456_789
NAMES = ["cat", "dog"]


def _instances() -> list[SimpleNamespace]:
    first, second = np.zeros((24, 32), bool), np.zeros((24, 32), bool)
    first[2:10, 3:9], second[12:20, 20:30] = True, True
    return [SimpleNamespace(track_id=7, class_id=1, score=0.75, mask=first),
            SimpleNamespace(track_id=9, class_id=0, score=0.5, mask=second)]


POSITIONS = [InstancePosition(PositionStatus.OK, (0.25, -0.5, 2.0), (0.3, 0.2, 0.05), 2.077, 48),
             InstancePosition(PositionStatus.NO_VALID_DEPTH)]


def _canonical(data: bytes) -> bytes:
    """CDR bytes with zeroed alignment padding (rclpy leaves padding uninitialised)."""
    store = bags.typestore()
    return bytes(store.serialize_cdr(store.deserialize_cdr(data, bags.INSTANCES_TYPE), bags.INSTANCES_TYPE))


def test_rclpy_and_rosbags_messages_are_the_same_message() -> None:
    header = Header(frame_id="camera")
    header.stamp.sec, header.stamp.nanosec = divmod(STAMP, 10**9)
    ours = instance_array(rclpy_types(), header, 24, 32, _instances(), NAMES, True, 4.5, POSITIONS, STAMP - 10**6)
    bag = bags.instance_array_message(STAMP, 24, 32, _instances(), NAMES, is_keyframe=True, latency_ms=4.5,
                                      positions=POSITIONS, depth_stamp_ns=STAMP - 10**6)
    rosbags_bytes = bytes(bags.typestore().serialize_cdr(bag, bags.INSTANCES_TYPE))
    assert _canonical(bytes(serialize_message(ours))) == rosbags_bytes
    first = ours.instances[0]
    assert first.position_status == Instance.POSITION_OK == PositionStatus.OK
    assert (first.position.x, first.position.z, first.depth_pixels) == (0.25, 2.0, 48)
    assert ours.instances[1].position_status == Instance.POSITION_NO_VALID_DEPTH == PositionStatus.NO_VALID_DEPTH
    assert (ours.depth_stamp.sec, ours.depth_stamp.nanosec) == divmod(STAMP - 10**6, 10**9)
    for msg in (ours, bag):
        decoded = decode_instances(msg)
        assert [d.track_id for d in decoded] == [7, 9] and [d.class_name for d in decoded] == ["dog", "cat"]
        assert all(np.array_equal(d.mask(), i.mask) for d, i in zip(decoded, _instances()))


def test_without_depth_every_instance_says_position_none() -> None:
    msg = instance_array(rclpy_types(), Header(), 24, 32, _instances(), NAMES)
    assert [i.position_status for i in msg.instances] == [Instance.POSITION_NONE] * 2
    assert (msg.depth_stamp.sec, msg.depth_stamp.nanosec) == (0, 0)


@pytest.mark.parametrize("types", ["rclpy", "rosbags"])
def test_bad_class_id_and_mask_size_are_refused_alike(types: str) -> None:
    kinds = rclpy_types() if types == "rclpy" else bags.instance_types()
    header = Header() if types == "rclpy" else bags.header_message(STAMP, "camera")
    bad_class = _instances()
    bad_class[0].class_id = 5
    with pytest.raises(ValueError, match="class_id 5 outside the 2 classes"):
        instance_array(kinds, header, 24, 32, bad_class, NAMES)
    with pytest.raises(ValueError, match="mask shape"):
        instance_array(kinds, header, 48, 64, _instances(), NAMES)
