"""Every parameter of ``mobileinst_node`` in one place: name, type, default, range, when it may change.

Ranges are ROS parameter descriptors, so rclpy itself rejects an out-of-range value (at start-up from a
params file or ``-p``, and at run time from ``set_parameters``) with the reason; ``check_value`` adds the
checks a descriptor cannot express (choices, formats). Parameters marked ``live`` change the running
tracker at once; the others are read when the node is configured and are refused while it is configured
(deactivate and clean up first), so that what ``get_parameters`` shows is what runs.

A parameter whose default is ``None`` starts unset and means "the model's / tracker's own default";
the node fills in the value it uses when it configures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from mobileinst_ros.runtime.model_dir import parse_resolution

__all__ = ["Spec", "SPECS", "LIVE", "declare_parameters", "check_value", "read_parameters"]


@dataclass(frozen=True)
class Spec:
    """One parameter. ``bounds`` is an inclusive (min, max) for numbers, ``choices`` lists allowed strings."""

    name: str
    type: Parameter.Type
    default: Any
    description: str
    live: bool = False
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def descriptor(self) -> ParameterDescriptor:
        text = self.description + (f" One of: {', '.join(self.choices)}." if self.choices else "")
        text += "" if self.live else " Read at configure."
        descriptor = ParameterDescriptor(name=self.name, type=self.type.value, description=text)
        if self.bounds is not None and self.type == Parameter.Type.INTEGER:
            descriptor.integer_range = [IntegerRange(from_value=int(self.bounds[0]), to_value=int(self.bounds[1]),
                                                     step=1)]
        elif self.bounds is not None:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(self.bounds[0]),
                                                                  to_value=float(self.bounds[1]), step=0.0)]
        return descriptor


_T = Parameter.Type
SPECS: tuple[Spec, ...] = (
    Spec("model_path", _T.STRING, "",
         "Exported model directory (model.yaml + ONNX graphs); empty: the shipped model models/default."),
    Spec("labels", _T.STRING_ARRAY, None,
         "Class names to publish (others are dropped); unset: every class of the model.", live=True),
    Spec("score_threshold", _T.DOUBLE, None, "Minimum instance score; unset: the model's default.",
         live=True, bounds=(0.0, 1.0)),
    Spec("mask_threshold", _T.DOUBLE, None, "Mask probability threshold; unset: the model's default.",
         live=True, bounds=(0.0, 1.0)),
    Spec("max_instances", _T.INTEGER, None, "At most this many instances per image; unset: the model's default.",
         live=True, bounds=(1, 100)),
    Spec("duplicate_iou", _T.DOUBLE, None,
         "Drop an instance whose mask overlaps a better-scored one above this IoU (1: keep all); unset: the "
         "model's default.", live=True, bounds=(0.0, 1.0)),
    Spec("split_components", _T.BOOL, None,
         "Publish each connected part of a mask as an instance of its own (for a model whose masks cover several "
         "look-alikes at once); unset: the model's default.", live=True),
    Spec("keyframe_interval", _T.INTEGER, None,
         "T: the full model runs every T-th image, the others reuse its kernels; unset: the tracker's default.",
         live=True, bounds=(1, 100)),
    Spec("adaptive_keyframes", _T.BOOL, False,
         "Run the full model early when the scene changes (reused masks shrink or lose confidence, "
         "features drift) instead of waiting for the T-th image.", live=True),
    Spec("reuse_mode", _T.STRING, "features",
         "What an image between keyframes reuses: features (the keyframe's deep backbone features and kernels: "
         "runs only the shallow backbone and mask decoder, fastest) or kernels (MobileInst's paper: runs the "
         "whole backbone and mask decoder, skips only the instance decoder).", live=True,
         choices=("features", "kernels")),
    Spec("non_keyframe_scale", _T.DOUBLE, 1.0,
         "Images between keyframes run the shallow backbone shrunk by this factor (1: full size); 0.75 takes "
         "about a third off a non-keyframe for slightly blurrier masks.", live=True, bounds=(0.25, 1.0)),
    Spec("non_keyframe_crops", _T.BOOL, True,
         "Images between keyframes run the shallow backbone only around the instances they follow (the same "
         "masks; the fewer and smaller the instances, the cheaper); false: on the whole image.", live=True),
    Spec("association_threshold", _T.DOUBLE, None,
         "Minimum kernel similarity to continue a track; unset: the tracker's default.", live=True,
         bounds=(0.0, 1.0)),
    Spec("max_track_age", _T.INTEGER, None,
         "Frames a lost track is kept for re-identification; unset: the tracker's default.", live=True,
         bounds=(0, 1000)),
    Spec("threads", _T.INTEGER, 1, "onnxruntime intra-op threads (the model is built for one core).",
         bounds=(1, 64)),
    Spec("precision", _T.STRING, "fp32", "Graph precision (int8 graphs come from mobileinst-quantize).",
         choices=("fp32", "int8")),
    Spec("resolution", _T.STRING, "",
         "Model resolution WxH among the exported ones; empty: the one closest to each image's aspect ratio."),
    Spec("input_transport", _T.STRING, "raw",
         "raw: sensor_msgs/Image on 'image'; compressed: sensor_msgs/CompressedImage on 'image/compressed'.",
         choices=("raw", "compressed")),
    Spec("qos_reliability", _T.STRING, "best_effort",
         "Reliability of the image subscription (sensor-data QoS, depth 1: only the newest image matters).",
         choices=("best_effort", "reliable")),
    Spec("publish_overlay", _T.BOOL, True,
         "Offer ~/overlay (rgb8: masks, track ids, classes, scores); drawn only while someone subscribes."),
    Spec("publish_labels", _T.BOOL, False,
         "Offer ~/labels (32SC1, the track id of each pixel, 0: none); drawn only while someone subscribes."),
    Spec("depth_fusion", _T.BOOL, False,
         "Give each instance a 3D position from an aligned depth image ('depth/image', 16UC1 mm or 32FC1 m) "
         "and its CameraInfo ('depth/camera_info'), paired with the colour image by stamp."),
    Spec("depth_slop", _T.DOUBLE, 0.05,
         "Largest stamp difference (s) between a colour image and the depth image fused with it.", live=True,
         bounds=(0.0, 1.0)),
    Spec("publish_markers", _T.BOOL, True,
         "With depth_fusion, offer ~/markers (visualization_msgs/MarkerArray: a box and a label per located "
         "instance, for RViz); built only while someone subscribes."),
    Spec("diagnostics_period", _T.DOUBLE, 1.0, "Seconds between /diagnostics messages.", bounds=(0.1, 60.0)),
    Spec("autostart", _T.BOOL, True,
         "Configure and activate at start-up (false: wait for lifecycle transitions)."),
)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}
LIVE = frozenset(spec.name for spec in SPECS if spec.live)


def declare_parameters(node: Node) -> None:
    """Declare every parameter on ``node``; overrides from the command line or a params file are checked
    here, and a bad one raises rclpy's InvalidParameterValueException naming it."""
    for spec in SPECS:
        default = spec.type if spec.default is None else spec.default
        node.declare_parameter(spec.name, default, spec.descriptor())


def check_value(name: str, value: Any, class_names: list[str] | None = None) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name`` (None: acceptable). Ranges are checked by
    the descriptors; ``class_names`` (the loaded model's) lets ``labels`` be checked."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None or value is None:
        return None
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
    if name == "resolution" and value:
        try:
            parse_resolution(value)
        except ValueError as error:
            return str(error)
    if name == "labels" and class_names is not None:
        unknown = [label for label in value if label not in class_names]
        if unknown:
            return f"labels {unknown} are not classes of the model; it has: {', '.join(class_names)}"
    return None


def read_parameters(node: Node) -> dict[str, Any]:
    """Name -> current value of every parameter; None for one left unset."""
    values = {}
    for spec in SPECS:
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            values[spec.name] = None
    return values
