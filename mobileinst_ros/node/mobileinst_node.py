"""``mobileinst_node``: camera images in, tracked instance masks out; a ROS 2 lifecycle node.

Lifecycle: *configure* loads the model (a missing or corrupt model fails the transition with the file
named) and creates the publishers; *activate* subscribes to the camera, starts the worker thread and
publishes the latched ModelInfo; *deactivate* stops both; *cleanup* frees the model. With
``autostart`` (default) ``main`` configures and activates by itself and exits non-zero when it cannot.

Topics (relative names: remap them, or push the node into a namespace):
- in  ``image`` (sensor_msgs/Image) or ``image/compressed`` (sensor_msgs/CompressedImage), see
  ``input_transport``; sensor-data QoS (REP 2003), depth 1, reliability from ``qos_reliability``;
- in, with ``depth_fusion``: ``depth/image`` (sensor_msgs/Image, 16UC1 mm or 32FC1 m, registered to the
  colour image) and ``depth/camera_info`` (sensor_msgs/CameraInfo); sensor-data QoS;
- out ``~/instances`` (mobileinst_ros/InstanceArray), one per processed image, header copied;
  ``~/model_info`` (ModelInfo, transient local); ``~/overlay`` (rgb8) and ``~/labels`` (32SC1), drawn only
  while subscribed; with ``depth_fusion`` ``~/markers`` (visualization_msgs/MarkerArray, only while
  subscribed); ``/diagnostics``.

Newest frame first: the subscription callback only stores the message in a one-slot mailbox; a worker
thread outside the executor converts and runs the model on whatever is newest, so no queue grows. An
image replaced before it was processed is counted as dropped (the node cannot keep up); one its
publisher sent that never arrived is counted as lost (transport), from the publisher's sequence numbers.

Depth fusion: the depth callback converts and keeps the last few depth images (with the newest camera
info); after the model, the worker pairs the colour image with the depth image nearest in stamp within
``depth_slop`` (waiting up to that long for one still on its way) and locates each instance
(``geometry.depth_fusion``). No depth, bad depth or bad camera info leave the instances without 3D,
flagged in ``position_status`` and counted in /diagnostics; the colour pipeline never waits for more.
"""
from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from mobileinst_ros.msg import InstanceArray, ModelInfo
from mobileinst_ros.node.diagnostics import FrameStats, WarningLimiter, diagnostic_status
from mobileinst_ros.geometry.depth_fusion import (DepthFrame, DepthPairing, InstancePosition, Intrinsics,
                                                  PositionStatus, locate_instances)
from mobileinst_ros.messages.images import (ImageConversionError, camera_info_intrinsics, compressed_to_rgb,
                                            depth_image_array, image_to_rgb,
                                                  labels_to_image_msg, rgb_to_image_msg)
from mobileinst_ros.messages.instances import instance_array, rclpy_types
from mobileinst_ros.messages.markers import instance_markers
from mobileinst_ros.overlay import draw_overlay, label_image
from mobileinst_ros.node.parameters import LIVE, check_value, declare_parameters, read_parameters
from mobileinst_ros.runtime.engine import Engine, ModelLoadError
from mobileinst_ros.tracking.tracker import KernelTracker

__all__ = ["MobileInstNode", "ShutdownSignals", "default_model_dir", "main"]

NODE_NAME = "mobileinst"
IMAGE_TOPIC = "image"  # relative: remap it to the camera topic
DEPTH_TOPIC = "depth/image"
DEPTH_INFO_TOPIC = "depth/camera_info"
DEPTH_QUEUE = 5  # depth images the DDS reader holds: the executor takes each at once into DepthPairing
SIGNAL_POLL_S = 0.1
WARN_PERIOD_S = 10.0  # at most one warning per kind of bad input per this many seconds
# Reliable so that every subscriber can match (a reliable reader never matches a best-effort writer).
OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
DEBUG_IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Engine / tracker attributes set from live parameters.
_ENGINE_ATTRIBUTES = ("score_threshold", "mask_threshold", "max_instances", "duplicate_iou", "split_components")
_TRACKER_ATTRIBUTES = ("keyframe_interval", "adaptive_keyframes", "reuse_mode", "non_keyframe_scale",
                       "non_keyframe_crops", "association_threshold", "max_track_age")


def _guarded(transition: Callable[[MobileInstNode, LifecycleState], TransitionCallbackReturn]) -> Callable:
    """Log an unexpected exception of a transition as one line (rclpy would swallow it) and fail it."""
    @functools.wraps(transition)
    def run(node: MobileInstNode, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return transition(node, state)
        except Exception as error:  # noqa: BLE001
            node.get_logger().error(f"{transition.__name__[3:]} failed: {type(error).__name__}: {error}")
            return TransitionCallbackReturn.ERROR
    return run


def default_model_dir() -> Path:
    """The shipped model ``models/default``: in the source checkout, else in an install's share/ (ament
    prefixes, then this Python's prefix). The first candidate when none exists, so errors name it."""
    source = Path(__file__).resolve().parents[2] / "models" / "default"
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    candidates = [source] + [Path(p) / "share" / "mobileinst_ros" / "models" / "default" for p in prefixes]
    return next((c for c in candidates if (c / "model.yaml").is_file()), candidates[0])


@dataclass
class _Frame:
    """A received image message, when it arrived (monotonic s), and whether it is compressed."""

    msg: Image | CompressedImage
    arrival: float


class _Mailbox:
    """Holds only the newest frame. ``put`` says whether it replaced an unprocessed one (a drop)."""

    def __init__(self) -> None:
        self._frame: _Frame | None = None
        self._ready = threading.Condition()

    def put(self, frame: _Frame) -> bool:
        with self._ready:
            replaced = self._frame is not None
            self._frame = frame
            self._ready.notify()
        return replaced

    def take(self, timeout: float) -> _Frame | None:
        with self._ready:
            if self._frame is None:
                self._ready.wait(timeout)
            frame, self._frame = self._frame, None
        return frame

    def clear(self) -> None:
        with self._ready:
            self._frame = None


@dataclass
class _Pipeline:
    """What configure builds: the model and the tracker, and the values they were built with."""

    engine: Engine
    tracker: KernelTracker
    model_dir: Path
    labels: frozenset[str] | None


class MobileInstNode(LifecycleNode):
    """The lifecycle node; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._pipeline: _Pipeline | None = None
        self._lock = threading.Lock()  # the worker's processing vs. live parameter changes and teardown
        self._mailbox = _Mailbox()
        self._stats = FrameStats()
        self._warnings = WarningLimiter(WARN_PERIOD_S)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._subscription = None
        self._diagnostics_timer = None
        self._outputs: dict[str, Any] = {}
        self._image_topic = ""
        self._depth: DepthPairing | None = None  # with depth_fusion, while active
        self._depth_subscriptions: list = []
        self._intrinsics: Intrinsics | None = None  # from the newest valid camera info
        self._depth_slop = 0.0
        # The tracker logs each non-finite frame through Python logging; the node reports those itself,
        # rate-limited, through its ROS logger.
        logging.getLogger("mobileinst_ros.tracking").setLevel(logging.ERROR)
        self.add_on_set_parameters_callback(self._check_parameters)
        declare_parameters(self)
        self.add_post_set_parameters_callback(self._apply_live_parameters)

    # --- parameters -------------------------------------------------------------------------------
    def _check_parameters(self, params: list[Parameter]) -> SetParametersResult:
        class_names = self._pipeline.engine.class_names if self._pipeline else None
        for param in params:
            if param.value is None:
                continue
            reason = check_value(param.name, param.value, class_names)
            if reason is None and self._pipeline is not None and param.name not in LIVE:
                reason = f"{param.name} is read at configure; deactivate and clean up the node to change it"
            if reason is None and self._pipeline is not None and param.name == "non_keyframe_scale":
                reason = self._pipeline.tracker.scale_refusal(param.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_live_parameters(self, params: list[Parameter]) -> None:
        if self._pipeline is None:
            return
        with self._lock:
            for param in params:
                self._apply(param.name, param.value)
        if any(p.name == "keyframe_interval" for p in params) and "model_info" in self._outputs:
            self._outputs["model_info"].publish(self._model_info())

    def _apply(self, name: str, value: Any) -> None:
        pipeline = self._pipeline
        if name in _ENGINE_ATTRIBUTES:
            setattr(pipeline.engine, name, value)
        elif name in _TRACKER_ATTRIBUTES:
            setattr(pipeline.tracker, name, value)
        elif name == "labels":
            pipeline.labels = frozenset(value) if value else None
        elif name == "depth_slop":
            self._depth_slop = value

    def _fill_unset_parameters(self, values: dict[str, Any]) -> None:
        """Show the defaults the model and tracker chose as the parameters' values."""
        pipeline = self._pipeline
        effective = [Parameter(name, value=getattr(pipeline.engine, name)) for name in _ENGINE_ATTRIBUTES
                     if values[name] is None]
        effective += [Parameter(name, value=getattr(pipeline.tracker, name)) for name in _TRACKER_ATTRIBUTES
                      if values[name] is None]
        self.set_parameters(effective)

    # --- lifecycle --------------------------------------------------------------------------------
    @_guarded
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = read_parameters(self)
        model_dir = Path(values["model_path"]) if values["model_path"] else default_model_dir()
        try:
            self._pipeline = self._load(model_dir, values)
        except ModelLoadError as error:
            self.get_logger().error(f"cannot load the model: {error}")
            return TransitionCallbackReturn.FAILURE
        except ValueError as error:  # a parameter the loaded model cannot take (labels, resolution)
            self.get_logger().error(f"cannot configure with {model_dir}: {error}")
            return TransitionCallbackReturn.FAILURE
        self._fill_unset_parameters(values)
        self._create_publishers(values)
        self.get_logger().info(
            f"configured: model {model_dir} ({len(self._pipeline.engine.class_names)} classes, "
            f"{values['precision']}, {values['threads']} thread(s), keyframe every "
            f"{self._pipeline.tracker.keyframe_interval} image(s))")
        return super().on_configure(state)

    def _load(self, model_dir: Path, values: dict[str, Any]) -> _Pipeline:
        engine = Engine(model_dir, threads=values["threads"], resolution=values["resolution"] or None,
                        precision=values["precision"],
                        **{k: values[k] for k in _ENGINE_ATTRIBUTES if values[k] is not None})
        reason = check_value("labels", values["labels"], engine.class_names)
        if reason is not None:
            raise ValueError(reason)
        tracker = KernelTracker(engine, **{k: values[k] for k in _TRACKER_ATTRIBUTES if values[k] is not None})
        labels = frozenset(values["labels"]) if values["labels"] else None
        return _Pipeline(engine, tracker, model_dir, labels)

    def _create_publishers(self, values: dict[str, Any]) -> None:
        self._outputs = {
            "instances": self.create_lifecycle_publisher(InstanceArray, "~/instances", OUTPUT_QOS),
            "model_info": self.create_lifecycle_publisher(ModelInfo, "~/model_info", LATCHED_QOS),
            "diagnostics": self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        if values["publish_overlay"]:
            self._outputs["overlay"] = self.create_lifecycle_publisher(Image, "~/overlay", DEBUG_IMAGE_QOS)
        if values["publish_labels"]:
            self._outputs["labels"] = self.create_lifecycle_publisher(Image, "~/labels", DEBUG_IMAGE_QOS)
        if values["depth_fusion"] and values["publish_markers"]:
            self._outputs["markers"] = self.create_lifecycle_publisher(MarkerArray, "~/markers", DEBUG_IMAGE_QOS)

    @_guarded
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        values = read_parameters(self)
        qos = QoSProfile(history=qos_profile_sensor_data.history, depth=1,
                         durability=qos_profile_sensor_data.durability,
                         reliability=ReliabilityPolicy.RELIABLE if values["qos_reliability"] == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        # image_transport's convention: the compressed stream is <base topic>/compressed, after remapping.
        base = self.resolve_topic_name(IMAGE_TOPIC)
        if values["input_transport"] == "compressed":
            self._image_topic = base + "/compressed"
            self._subscription = self.create_subscription(CompressedImage, self._image_topic, self._on_image, qos)
        else:
            self._image_topic = base
            self._subscription = self.create_subscription(Image, self._image_topic, self._on_image, qos)
        self._stats = FrameStats(depth=values["depth_fusion"])
        if values["depth_fusion"]:
            self._subscribe_depth(qos)
        self._mailbox.clear()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="mobileinst_worker", daemon=True)
        self._worker.start()
        self._diagnostics_timer = self.create_timer(values["diagnostics_period"], self._publish_diagnostics)
        self._outputs["model_info"].publish(self._model_info())
        self.get_logger().info(f"active: {values['input_transport']} images from {self._image_topic}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_publishers()
        self._pipeline = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._destroy_publishers()
        self._pipeline = None
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._destroy_publishers()
        self._pipeline = None
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        for subscription in self._depth_subscriptions:
            self.destroy_subscription(subscription)
        self._depth_subscriptions, self._depth, self._intrinsics = [], None, None

    def _destroy_publishers(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}

    # --- images -----------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage, info: MessageInfo) -> None:
        """Executor thread: store the newest image and nothing else."""
        gid = info.get("publisher_gid")
        self._stats.received(bytes(gid["data"]) if gid else None, info.get("publication_sequence_number"))
        if self._mailbox.put(_Frame(msg, time.monotonic())):
            self._stats.count("dropped")

    # --- depth -------------------------------------------------------------------------------------
    def _subscribe_depth(self, image_qos: QoSProfile) -> None:
        depth_qos = QoSProfile(history=image_qos.history, depth=DEPTH_QUEUE, durability=image_qos.durability,
                               reliability=image_qos.reliability)
        # Best effort matches every camera-info publisher, reliable or not.
        info_qos = QoSProfile(history=image_qos.history, depth=1, durability=image_qos.durability,
                              reliability=ReliabilityPolicy.BEST_EFFORT)
        self._depth = DepthPairing()
        self._depth_slop = self.get_parameter("depth_slop").value
        self._depth_subscriptions = [
            self.create_subscription(Image, DEPTH_TOPIC, self._on_depth, depth_qos),
            self.create_subscription(CameraInfo, DEPTH_INFO_TOPIC, self._on_camera_info, info_qos)]

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._intrinsics = camera_info_intrinsics(msg)
        except ValueError as error:
            self._problem("camera info rejected",
                          f"camera info on {self.resolve_topic_name(DEPTH_INFO_TOPIC)} ignored: {error}")

    def _on_depth(self, msg: Image) -> None:
        """Executor thread: convert (a few 0.1 ms) and keep; pairing happens in the worker."""
        try:
            depth = depth_image_array(msg)
        except ImageConversionError as error:
            self._problem("depth rejected", f"depth image on {self.resolve_topic_name(DEPTH_TOPIC)} skipped: {error}")
            return
        depth_pairing = self._depth
        if depth_pairing is not None:
            depth_pairing.add(DepthFrame(Time.from_msg(msg.header.stamp).nanoseconds, depth, self._intrinsics))

    def _locate(self, stamp: Time, instances: list) -> tuple[list[InstancePosition], int]:
        """Each instance's position from the depth image paired with ``stamp``, and that image's stamp (ns;
        0 when none). Worker thread."""
        frame = self._depth.pair(stamp.nanoseconds, self._depth_slop, wait_s=self._depth_slop)
        intrinsics = None if frame is None else frame.intrinsics or self._intrinsics
        if intrinsics is None:
            self._stats.count("depth missing")
            return [InstancePosition(PositionStatus.NO_DEPTH)] * len(instances), 0
        try:
            positions = locate_instances(frame.depth, intrinsics, [i.mask for i in instances])
        except ValueError as error:  # camera info for another image size
            self._problem("depth rejected", f"depth image not fused: {error}")
            return [InstancePosition(PositionStatus.NO_DEPTH)] * len(instances), 0
        self._stats.count("depth fused")
        return positions, frame.stamp_ns

    def _work(self) -> None:
        while not self._stop.is_set():
            frame = self._mailbox.take(timeout=0.1)
            if frame is None:
                continue
            try:
                with self._lock:
                    self._process(frame)
            except Exception as error:  # noqa: BLE001  (one bad frame must not end the worker)
                if not self.context.ok():
                    return  # shutting down (Ctrl-C): the publishers are gone
                self._problem("failed", f"image skipped: {type(error).__name__}: {error}")

    def _process(self, frame: _Frame) -> None:
        pipeline = self._pipeline
        try:
            rgb = compressed_to_rgb(frame.msg) if isinstance(frame.msg, CompressedImage) else image_to_rgb(frame.msg)
        except ImageConversionError as error:
            self._problem("rejected", f"image on {self._image_topic} skipped: {error}")
            return
        try:
            result = pipeline.tracker.process(rgb)
        except Exception as error:  # noqa: BLE001  (the node must outlive any one bad frame)
            self._problem("failed", f"model failed on a {rgb.shape[1]}x{rgb.shape[0]} image: "
                                    f"{type(error).__name__}: {error}")
            return
        if result.dropped:
            self._problem("failed", f"model output on a {rgb.shape[1]}x{rgb.shape[0]} image was not finite; "
                                    f"image skipped")
            return
        instances = [i for i in result.instances
                     if pipeline.labels is None or pipeline.engine.class_names[i.class_id] in pipeline.labels]
        header = frame.msg.header
        height, width = rgb.shape[:2]
        positions, depth_stamp = self._locate(Time.from_msg(header.stamp), instances) if self._depth else (None, 0)
        self._outputs["instances"].publish(instance_array(
            rclpy_types(), header, height, width, instances, pipeline.engine.class_names, result.is_keyframe,
            result.latency_ms, positions, depth_stamp))
        markers = self._outputs.get("markers")
        if positions is not None and markers is not None and markers.get_subscription_count() > 0:
            markers.publish(instance_markers(header, instances, positions, pipeline.engine.class_names))
        latency_ms = (time.monotonic() - frame.arrival) * 1e3
        stamped = header.stamp.sec != 0 or header.stamp.nanosec != 0
        age_ms = (self.get_clock().now() - Time.from_msg(header.stamp)).nanoseconds / 1e6 if stamped else None
        self._stats.processed(latency_ms, result.latency_ms, age_ms)
        self._publish_debug_images(header, rgb, instances, pipeline.engine.class_names)

    def _problem(self, counter: str, text: str) -> None:
        self._stats.count(counter)
        warning = self._warnings.text(text)
        if warning is not None:
            self.get_logger().warning(warning)

    def _publish_debug_images(self, header: Any, rgb: np.ndarray, instances: list, class_names: list[str]) -> None:
        overlay = self._outputs.get("overlay")
        if overlay is not None and overlay.get_subscription_count() > 0:
            captions = [f"{class_names[i.class_id]} {i.score:.2f}" for i in instances]
            image = draw_overlay(rgb, [i.mask for i in instances], [i.track_id for i in instances], captions)
            overlay.publish(rgb_to_image_msg(image, header))
        labels = self._outputs.get("labels")
        if labels is not None and labels.get_subscription_count() > 0:
            ids = label_image(rgb.shape[0], rgb.shape[1], [i.mask for i in instances],
                              [i.track_id for i in instances], [i.score for i in instances])
            labels.publish(labels_to_image_msg(ids, header))

    # --- latched metadata and diagnostics -----------------------------------------------------------
    def _model_info(self) -> ModelInfo:
        pipeline = self._pipeline
        width, height = pipeline.engine.resolutions[0]
        info = ModelInfo(model_name=str(pipeline.model_dir), class_names=pipeline.engine.class_names,
                         input_height=height, input_width=width,
                         keyframe_interval=int(pipeline.tracker.keyframe_interval))
        info.header.stamp = self.get_clock().now().to_msg()
        return info

    def _publish_diagnostics(self) -> None:
        pipeline = self._pipeline
        values = read_parameters(self)
        info = {"model": str(pipeline.model_dir), "threads": str(values["threads"]),
                "precision": values["precision"], "keyframe interval": str(values["keyframe_interval"]),
                "input": f"{values['input_transport']} {self._image_topic}"}
        if values["depth_fusion"]:
            info["depth"] = (f"{self.resolve_topic_name(DEPTH_TOPIC)}, {self.resolve_topic_name(DEPTH_INFO_TOPIC)}, "
                             f"slop {values['depth_slop']} s")
        status = diagnostic_status(f"{self.get_fully_qualified_name()}: instance segmentation",
                                   self._stats.report(), info, self._image_topic)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._outputs["diagnostics"].publish(array)


class ShutdownSignals:
    """SIGINT and SIGTERM ask the node to shut down; the handler only sets ``requested``, so a signal can
    never raise in the middle of shutdown (rclpy's own handlers would raise KeyboardInterrupt in
    whatever the main thread runs: joining the worker, uninstalling the handlers). ``ignore`` then
    makes the process deaf to both for the rest of the shutdown: ``ros2 launch`` without a terminal
    sends SIGINT twice (to the node and to its process group), and more may follow."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = threading.Event()
        for signum in self.SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.requested.set()

    def ignore(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    """Run the node until SIGINT or SIGTERM (exit 0); with ``autostart`` configure and activate first.
    Exit status 1 when a parameter is invalid or the node cannot configure or activate."""
    signals = ShutdownSignals()  # before rclpy.init, which is told to install no handlers of its own
    rclpy.init(args=sys.argv if argv is None else ["mobileinst_node", *argv],
               signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        try:
            node = MobileInstNode()
        except (InvalidParameterValueException, InvalidParameterTypeException) as error:
            print(f"mobileinst_node: {error}", file=sys.stderr)
            return 1
        # A failed transition has logged its one-line reason already.
        if node.get_parameter("autostart").value and not (
                node.trigger_configure() == TransitionCallbackReturn.SUCCESS
                and node.trigger_activate() == TransitionCallbackReturn.SUCCESS):
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            # The timeout bounds how long a signal waits for the main thread (Python runs handlers there).
            while not signals.requested.is_set():
                executor.spin_once(timeout_sec=SIGNAL_POLL_S)
        except ExternalShutdownException:
            pass
        return 0
    finally:
        signals.ignore()  # shutdown has begun: nothing may interrupt it now
        if node is not None:
            node._stop_processing()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
