"""Publishes rgb8 camera images at a fixed rate for a while, like a fast camera driver, then prints
``sent <count> <last stamp ns>``. Run in its own process by test_node_newest_frame.py.

Before the timed burst it sends one image every 0.1 s until the node answers one on ANSWER_TOPIC: the
subscriber may match the publisher after the publisher matched it, and images sent before the node's first
are not counted by it (neither received nor lost). Warm-up images come from the same publisher, so every
burst image is then counted as received or lost.

Usage: node_image_burst.py TOPIC ANSWER_TOPIC WIDTH HEIGHT RATE_HZ SECONDS
"""
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from mobileinst_ros.msg import InstanceArray
from oracle_model import frame


def main(topic: str, answer_topic: str, width: int, height: int, rate: float, seconds: float) -> int:
    rclpy.init()
    node = rclpy.create_node("image_burst")
    publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
    answers: list[InstanceArray] = []
    node.create_subscription(InstanceArray, answer_topic, answers.append, 10)
    scale = width // 64
    pixels = frame((width, height), {0: (8 * scale, 8 * scale, 16 * scale, 16 * scale),
                                     2: (40 * scale, 24 * scale, 16 * scale, 16 * scale)})
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels.tobytes())
    msg.header.frame_id = "camera"
    deadline, next_warm_up = time.monotonic() + 60, 0.0
    while not answers:
        if time.monotonic() > deadline:
            print("the node answered no image", file=sys.stderr)
            return 1
        if time.monotonic() >= next_warm_up:
            msg.header.stamp = node.get_clock().now().to_msg()
            publisher.publish(msg)
            next_warm_up = time.monotonic() + 0.1
        rclpy.spin_once(node, timeout_sec=0.02)
    count, start = 0, time.monotonic()
    while count < rate * seconds:
        delay = start + count / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(msg)
        count += 1
    last = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    # Stay a moment so that the last images leave this process before it ends.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"sent {count} {last}", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                  float(sys.argv[6])))
