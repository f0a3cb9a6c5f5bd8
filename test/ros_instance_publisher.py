"""Publishes one InstanceArray built from the masks in an .npz, then waits to be stopped.

Run in its own process by test_instances_cross_process.py. Transient-local durability lets the
subscriber get the message even if it matches after publication.
"""
import sys
import time
from types import SimpleNamespace

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from mobileinst_ros.msg import InstanceArray
from mobileinst_ros.messages.instances import instance_array, rclpy_types

QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def main(npz_path: str, topic: str) -> int:
    data = np.load(npz_path)
    instances = [SimpleNamespace(track_id=t, class_id=c, score=s, mask=m)
                 for t, c, s, m in zip(data["track_ids"], data["class_ids"], data["scores"], data["masks"])]
    rclpy.init()
    node = rclpy.create_node("instance_publisher")
    publisher = node.create_publisher(InstanceArray, topic, QOS)
    header = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="camera_optical")
    height, width = data["masks"].shape[1:]
    publisher.publish(instance_array(rclpy_types(), header, height, width, instances, list(data["class_names"]),
                                     is_keyframe=True, latency_ms=12.5))
    deadline = time.monotonic() + 60  # never outlive a broken test run
    while rclpy.ok() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
