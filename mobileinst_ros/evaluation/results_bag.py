"""A run as a rosbag2, so that runs can be kept, re-scored and compared without the model.

Topics (receive time = the input image's stamp):
- ``/mobileinst/instances`` InstanceArray: what the model output for each processed frame (none for a
  dropped frame);
- ``/ground_truth/instances`` InstanceArray: the ground truth, in the model's class indices;
- ``/mobileinst/model_info`` ModelInfo (latched): class names, model, keyframe interval;
- ``/evaluation/frames`` std_msgs/msg/Header: one per input frame; ``frame_id`` is the sequence name
  (a dataset video), so sequences and drops survive the round trip;
- metadata.yaml ``custom_data`` ``mobileinst_eval.info``: the run's info (model, mode, T, input) as JSON.
A bag recorded elsewhere (e.g. the node's output next to a ground-truth bag) reads too: without
``/evaluation/frames`` it is one sequence whose frames are the ground-truth stamps (or, without
ground truth, the prediction stamps).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from mobileinst_ros.data import bags
from mobileinst_ros.evaluation.records import Detection, FrameRecord, RunRecord, SequenceRecord
from mobileinst_ros.evaluation.sources import InputError, message_detections

__all__ = ["FRAMES_TOPIC", "MODEL_INFO_TOPIC", "PREDICTIONS_TOPIC", "detections_from_message", "read_results_bag",
           "write_results_bag"]

PREDICTIONS_TOPIC = "/mobileinst/instances"
MODEL_INFO_TOPIC = "/mobileinst/model_info"
FRAMES_TOPIC = "/evaluation/frames"
HEADER_TYPE = "std_msgs/msg/Header"
INFO_KEY = "mobileinst_eval.info"  # metadata.yaml custom_data: the run's info as JSON


class _Decoded:
    """Instances of a message as masks, for the message builder (it takes boolean masks)."""

    def __init__(self, det: Detection) -> None:
        self.track_id, self.class_id, self.score = det.track_id, det.class_id, det.score
        self.mask = mask_utils.decode(det.rle).astype(bool)


def write_results_bag(run: RunRecord, path: str | Path, storage: str = "sqlite3") -> None:
    """Write ``run`` to a new bag at ``path`` (layout in the module docstring)."""
    store = bags.typestore()
    first = min((f.stamp_ns for f in run.frames()), default=bags.DEFAULT_START_NS)
    info = run.info
    with bags.BagWriter(path, storage) as bag:
        bag.set_custom_data(INFO_KEY, json.dumps(run.info, sort_keys=True))
        bag.write(MODEL_INFO_TOPIC, bags.model_info_message(
            first, run.class_names, str(info.get("model", "")), tuple(info.get("input_size", (0, 0))),
            int(info.get("keyframe_interval", 0))), first, latched=True)
        for sequence in run.sequences:
            for frame in sequence.frames:
                stamp = frame.stamp_ns
                header = store.types[HEADER_TYPE](
                    stamp=store.types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9),
                    frame_id=sequence.name)
                bag.write(FRAMES_TOPIC, header, stamp)
                if frame.ground_truth is not None:
                    bag.write(bags.GT_TOPIC, bags.instance_array_message(
                        stamp, sequence.height, sequence.width, map(_Decoded, frame.ground_truth),
                        run.class_names), stamp)
                if frame.predictions is not None:
                    bag.write(PREDICTIONS_TOPIC, bags.instance_array_message(
                        stamp, sequence.height, sequence.width, map(_Decoded, frame.predictions), run.class_names,
                        is_keyframe=bool(frame.is_keyframe), latency_ms=frame.latency_ms or 0.0), stamp)


def detections_from_message(msg: Any, class_names: list[str], path: Path, topic: str) -> list[Detection]:
    """An InstanceArray as Detections in the indices of ``class_names`` (matched by name)."""
    detections, unknown = message_detections(msg, class_names, path, topic)
    if unknown:
        raise InputError(f"{path}: {topic} has class {unknown[0]!r}, not one of the model's classes "
                         f"{', '.join(class_names)}")
    return detections


def read_results_bag(path: str | Path, predictions_topic: str = PREDICTIONS_TOPIC,
                     model_info_topic: str = MODEL_INFO_TOPIC, gt_topic: str = bags.GT_TOPIC) -> RunRecord:
    """A results bag (or a recording of the node's output with ground truth) back as a RunRecord."""
    path = Path(path)
    topics = bags.bag_topics(path)
    wanted = {predictions_topic: bags.INSTANCES_TYPE, model_info_topic: bags.MODEL_INFO_TYPE}
    optional = {gt_topic: bags.INSTANCES_TYPE, FRAMES_TOPIC: HEADER_TYPE}
    wanted.update({t: m for t, m in optional.items() if t in topics})
    class_names: list[str] | None = None
    info: dict = {}
    predictions: dict[int, Any] = {}
    ground_truth: dict[int, Any] = {}
    frames: list[tuple[str, int]] = []
    for _, topic, msg in bags.read_messages(path, wanted):
        if topic == model_info_topic:
            class_names = list(msg.class_names)
            info = {"model": msg.model_name, "keyframe_interval": int(msg.keyframe_interval)}
        elif topic == FRAMES_TOPIC:
            frames.append((msg.frame_id, bags.stamp_ns(msg)))
        else:  # the same topic may be both (ground truth scored against itself)
            if topic == predictions_topic:
                predictions[bags.stamp_ns(msg.header)] = msg
            if topic == gt_topic:
                ground_truth[bags.stamp_ns(msg.header)] = msg
    if class_names is None:
        raise InputError(f"{path}: {model_info_topic} has no ModelInfo: the class names are unknown")
    try:
        info.update(json.loads(bags.bag_custom_data(path).get(INFO_KEY, "{}")))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: metadata custom_data {INFO_KEY} is not JSON ({error})") from None
    if not frames:
        name = path.name
        frames = [(name, s) for s in sorted(ground_truth or predictions)]
    return _assemble(path, class_names, info, frames, predictions, ground_truth, predictions_topic, gt_topic)


def _assemble(path: Path, class_names: list[str], info: dict, frames: list[tuple[str, int]],
              predictions: dict[int, Any], ground_truth: dict[int, Any], predictions_topic: str,
              gt_topic: str) -> RunRecord:
    run = RunRecord(class_names, [], dict(info, source=str(path)))
    for name, stamp in frames:
        pred, gt = predictions.get(stamp), ground_truth.get(stamp)
        if not run.sequences or run.sequences[-1].name != name:
            size = next((m for m in (pred, gt) if m is not None), None)
            run.sequences.append(SequenceRecord(name, int(size.height) if size else 0, int(size.width) if size else 0))
        sequence = run.sequences[-1]
        if sequence.height == 0 and (pred or gt):
            sequence.height, sequence.width = int((pred or gt).height), int((pred or gt).width)
        sequence.frames.append(FrameRecord(
            stamp,
            detections_from_message(gt, class_names, path, gt_topic) if gt is not None else None,
            detections_from_message(pred, class_names, path, predictions_topic) if pred is not None else None,
            float(pred.latency_ms) if pred is not None else None, {},
            bool(pred.is_keyframe) if pred is not None else None))
    return run
