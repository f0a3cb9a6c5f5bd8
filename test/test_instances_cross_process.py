"""An InstanceArray published by one process arrives intact in another (real rclpy, Fast DDS)."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from mobileinst_ros.masks import mask_bbox
from mobileinst_ros.msg import InstanceArray
from mobileinst_ros.messages.instances import decode_instance_masks

PUBLISHER = Path(__file__).with_name("ros_instance_publisher.py")
QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _masks(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    masks = np.zeros((5, height, width), bool)
    masks[0, 10:40, 20:90] = True                      # a box
    yy, xx = np.mgrid[:height, :width]
    masks[1] = (yy - 60) ** 2 + (xx - 50) ** 2 < 25 ** 2  # a disc touching nothing
    masks[2, :, -3:] = True                              # touches the right border
    masks[3, 77, 3] = True                               # one pixel
    masks[4] = rng.random((height, width)) > 0.7         # ragged
    return masks


@pytest.mark.ros
def test_instance_array_arrives_intact_in_another_process(tmp_path: Path) -> None:
    masks = _masks(97, 131)  # odd sizes on purpose
    npz = tmp_path / "instances.npz"
    np.savez(npz, masks=masks, track_ids=np.array([1, 2, 3, 40, 5]), class_ids=np.array([0, 1, 1, 2, 0]),
             scores=np.array([0.9, 0.8, 0.7, 0.6, 0.5]), class_names=np.array(["disc", "box", "star"]))
    topic = "/test_cross_process/instances"

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("instance_subscriber", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: list[InstanceArray] = []
    node.create_subscription(InstanceArray, topic, received.append, QOS)
    publisher = subprocess.Popen([sys.executable, str(PUBLISHER), str(npz), topic])
    try:
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline and publisher.poll() is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)
        node.destroy_node()
        rclpy.shutdown(context=context)

    assert received, "no InstanceArray arrived within 30 s"
    msg = received[0]
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (1700000000, 123456789, "camera_optical")
    assert (msg.height, msg.width, msg.is_keyframe) == (97, 131, True)
    assert msg.latency_ms == pytest.approx(12.5)
    assert [i.track_id for i in msg.instances] == [1, 2, 3, 40, 5]
    assert [i.class_name for i in msg.instances] == ["disc", "box", "box", "star", "disc"]
    assert [i.score for i in msg.instances] == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    for original, decoded, inst in zip(masks, decode_instance_masks(msg), msg.instances):
        np.testing.assert_array_equal(decoded, original)
        roi = inst.bbox
        assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == mask_bbox(original)
    # Compactness: the RLE of a box is a handful of runs per column, far below one byte per pixel.
    assert len(msg.instances[0].mask_rle) < 2 * 131 + 2
