"""What the node tests share: the oracle model exported with the real exporter, the node in its own
process (the package's one runner, replay.node_process), and a client (its own rclpy context) that publishes images, collects the node's outputs and
calls its lifecycle and parameter services.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from mobileinst_ros.msg import InstanceArray, ModelInfo
from mobileinst_ros.replay.node_process import FASTDDS_PROFILE, NodeProcess, node_command

ROOT = Path(__file__).resolve().parents[1]
NODE = "/mobileinst"
IMAGE_TOPIC = "/test_camera/image"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def export_oracle_model(directory: Path, resolution: tuple[int, int] = (64, 48)) -> Path:
    """The hand-weighted oracle network (test/oracle_model.py: red, green and blue squares on gray are
    instances of classes red, green, blue) exported by mobileinst-export's code at ``resolution``."""
    from oracle_model import export_oracle  # noqa: PLC0415  (torch: the node under test never imports it)

    return export_oracle(directory, [resolution])


def _ros_args(model: Path | str, ros_args: tuple[str, ...]) -> list[str]:
    return ["-p", f"model_path:={model}", "-r", f"image:={IMAGE_TOPIC}", *ros_args]


def start_node(log: Path, model: Path | str, *ros_args: str, env: dict[str, str] | None = None) -> NodeProcess:
    """mobileinst_node reading IMAGE_TOPIC in a child process, with extra ``--ros-args`` items; not waited
    for (``with`` it, or ``wait_until_active``)."""
    return NodeProcess(log, _ros_args(model, ros_args), env, wait_until_active=False, cwd=ROOT).start()


def run_node(model: Path | str, *ros_args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the node to completion (for start-up failures)."""
    return subprocess.run(node_command(_ros_args(model, ros_args)), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def stamp(sec: int, nanosec: int) -> Time:
    return Time(sec=sec, nanosec=nanosec)


def image_msg(pixels: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An Image of ``pixels`` (H, W[, C]) in ``encoding`` (little endian, no row padding)."""
    height, width = pixels.shape[:2]
    data = np.ascontiguousarray(pixels)
    return Image(header=header or Header(), height=height, width=width, encoding=encoding, is_bigendian=False,
                 step=data[0].nbytes, data=data.tobytes())


class Client:
    """The test's side of the graph: its own rclpy context, publishers, collected outputs, services."""

    def __init__(self, name: str = "node_test_client") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.instances: list[InstanceArray] = []
        self.model_info: list[ModelInfo] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.overlays: list[Image] = []
        self.instances_subscription = self.node.create_subscription(
            InstanceArray, f"{NODE}/instances", self.instances.append, RELIABLE)
        self.node.create_subscription(ModelInfo, f"{NODE}/model_info", self.model_info.append, LATCHED)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.images = self.node.create_publisher(Image, IMAGE_TOPIC, RELIABLE)
        self.compressed = self.node.create_publisher(CompressedImage, IMAGE_TOPIC + "/compressed", RELIABLE)

    def subscribe_overlay(self) -> None:
        self.node.create_subscription(Image, f"{NODE}/overlay", self.overlays.append, RELIABLE)

    def spin_until(self, condition: Callable[[], Any], timeout: float, what: str) -> None:
        """Spin until ``condition()`` is true; fail the test naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for_node_input(self, publisher: Any, timeout: float = 30) -> None:
        """Wait until the node reads ``publisher`` and its instances reach this client."""
        self.spin_until(lambda: publisher.get_subscription_count() > 0
                        and self.instances_subscription.get_publisher_count() > 0, timeout, "the node to match")

    def publish_until_answered(self, publisher: Any, msg: Any, timeout: float = 30, repeat_s: float = 2.0) -> InstanceArray:
        """Publish ``msg`` and wait for the InstanceArray that carries its stamp. It is published again
        every ``repeat_s``: right after discovery the node's reader may not have matched yet although
        this writer has, and a best-effort reader gets no retransmission."""
        self.wait_for_node_input(publisher)
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)

        def answer() -> InstanceArray | None:
            return next((m for m in self.instances if (m.header.stamp.sec, m.header.stamp.nanosec) == key), None)

        deadline = time.monotonic() + timeout
        while answer() is None:
            publisher.publish(msg)
            until = min(deadline, time.monotonic() + repeat_s)
            while answer() is None and time.monotonic() < until:
                self.executor.spin_once(timeout_sec=0.05)
            if time.monotonic() >= deadline and answer() is None:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for the InstanceArray stamped {key}")
        return answer()

    def totals(self) -> dict[str, int]:
        """The node's latest '<counter> total' diagnostics values (received, processed, dropped, ...)."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith(NODE):
                    return {kv.key[:-len(" total")]: int(kv.value) for kv in status.values if kv.key.endswith(" total")}
        return {}

    def wait_for_total(self, counter: str, value: int, timeout: float = 30) -> None:
        """Wait until the node's diagnostics report ``counter`` total == ``value``."""
        self.spin_until(lambda: self.totals().get(counter) == value, timeout, f"{counter} total {value}")

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 30) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            self.spin_until(client.service_is_ready, timeout, f"service {name}")
            future = client.call_async(request)
            self.spin_until(future.done, timeout, f"the answer of {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def state(self) -> str:
        return self.call(GetState, f"{NODE}/get_state", GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"{NODE}/change_state", request).success

    def set_parameter(self, name: str, value: Any, type_: Parameter.Type | None = None) -> SetParametersResult:
        msg: ParameterMsg = Parameter(name, type_, value).to_parameter_msg()
        return self.call(SetParameters, f"{NODE}/set_parameters", SetParameters.Request(parameters=[msg])).results[0]

    def get_parameter(self, name: str) -> Any:
        value = self.call(GetParameters, f"{NODE}/get_parameters", GetParameters.Request(names=[name])).values[0]
        return Parameter.from_parameter_msg(ParameterMsg(name=name, value=value)).value

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_fastdds_profile() -> dict[str, str]:
    """This environment plus the package's Fast DDS profile (large images over shared memory)."""
    return {**os.environ, "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE)}


def encode_image(rgb: np.ndarray, encoding: str, header: Header) -> Image:
    """RGB uint8 (H, W, 3) as an Image in ``encoding`` (a camera driver's view of the same scene)."""
    import cv2  # noqa: PLC0415

    bgr = rgb[:, :, ::-1]
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    direct = {"rgb8": rgb, "bgr8": bgr, "rgba8": np.concatenate([rgb, alpha], -1),
              "bgra8": np.concatenate([bgr, alpha], -1), "mono8": gray, "8UC3": bgr}
    if encoding in direct:
        return image_msg(direct[encoding], encoding, header)
    sixteen = {"rgb16": rgb, "bgr16": bgr, "mono16": gray}
    if encoding in sixteen:
        return image_msg(sixteen[encoding].astype(np.uint16) * 257, encoding, header)
    if encoding == "bayer_rggb8":
        raw = np.empty(rgb.shape[:2], np.uint8)
        raw[0::2, 0::2], raw[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
        raw[1::2, 0::2], raw[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
        return image_msg(raw, encoding, header)
    if encoding == "yuv422_yuy2":
        return image_msg(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUY2), encoding, header)
    raise ValueError(f"no test encoder for {encoding}")
