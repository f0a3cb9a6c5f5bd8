"""Live mode: the bag played at its recorded rate through real ROS topics into a running mobileinst_node.

Three processes besides this one, on a ROS domain of their own (loopback discovery, the package's
Fast DDS profile): the node (``python -m mobileinst_ros.node.mobileinst_node``), and the player and
recorder of ``mobileinst_ros.replay.bag_replay`` (which wait for each other and the node by publisher and
subscription counts). The node keeps only the newest image, so a slow model drops frames exactly as
it would on a robot; a frame whose InstanceArray never arrives counts as dropped. End-to-end latency
is the recorder's receive time minus the player's send time (one host, one clock).

Left in the result directory: ``node.log`` and ``live_recording/`` (the node's raw output, receive
times as bag timestamps).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from tqdm import tqdm

from mobileinst_ros.data import bags
from mobileinst_ros.evaluation.records import FrameRecord, RunRecord, SequenceRecord
from mobileinst_ros.evaluation.results_bag import MODEL_INFO_TOPIC, PREDICTIONS_TOPIC, detections_from_message
from mobileinst_ros.evaluation.sources import COMPRESSED_IMAGE_TYPE, InputError, Source
from mobileinst_ros.replay.bag_replay import ReplayError, ReplayResult, recorded_by_stamp, replay
from mobileinst_ros.replay.node_process import NodeProcess, isolated_env, node_ros_args

__all__ = ["LiveError", "run_live"]

RECORDING = "live_recording"


class LiveError(RuntimeError):
    """The node or the replay failed; the text carries the failing process's last words."""


def _node_params(source: Source, model: Path, interval: int, precision: str, threads: int,
                 resolution: str | None) -> tuple[dict[str, object], str]:
    """The node's parameters and the topic its ``image`` is remapped to."""
    topic = source.image_topic
    transport = "raw"
    if bags.bag_topics(source.path)[topic][0] == COMPRESSED_IMAGE_TYPE:
        if not topic.endswith("/compressed"):
            raise InputError(f"{source.path}: {topic} holds CompressedImage but does not end in /compressed, "
                             "the node's (image_transport's) naming")
        topic, transport = topic[: -len("/compressed")], "compressed"
    params: dict[str, object] = {"model_path": str(model), "keyframe_interval": interval, "precision": precision,
                                 "threads": threads, "input_transport": transport, "publish_overlay": "false"}
    if resolution:
        params["resolution"] = resolution
    return params, topic


def _replay_with_progress(source: Source, recording: Path, env: dict[str, str], rate: float,
                          progress: bool) -> ReplayResult:
    """replay() in a thread, with a progress bar over the bag's duration (seconds of input played)."""
    topics = {PREDICTIONS_TOPIC: bags.INSTANCES_TYPE, MODEL_INFO_TOPIC: bags.MODEL_INFO_TYPE}
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["result"] = replay(source.path, recording, [source.image_topic], topics, rate=rate, env=env)
        except (ReplayError, OSError) as error:
            outcome["error"] = error

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    duration = max(round(source.frame_count / source.fps / rate), 1)
    with tqdm(total=duration, desc="live (s of input)", unit="s", disable=not progress) as bar:
        start = time.monotonic()
        while thread.is_alive():
            thread.join(timeout=0.5)
            bar.update(min(int(time.monotonic() - start), duration) - bar.n)
    if "error" in outcome:
        raise LiveError(str(outcome["error"]))
    return outcome["result"]


def _assemble(source: Source, info: dict, result: ReplayResult, recording: Path) -> RunRecord:
    sent = dict(result.sent)
    received = recorded_by_stamp(recording, PREDICTIONS_TOPIC)
    run = RunRecord(list(source.class_names), [], dict(info, mode="live"))
    for name, frames in source.sequences():
        sequence = None
        for frame in frames:
            if sequence is None:
                sequence = SequenceRecord(name, frame.rgb.shape[0], frame.rgb.shape[1])
                run.sequences.append(sequence)
            msg, receive_ns = received.get(frame.stamp_ns, (None, None))
            if msg is None:
                sequence.frames.append(FrameRecord(frame.stamp_ns, frame.ground_truth, None))
                continue
            e2e = (receive_ns - sent[frame.stamp_ns]) / 1e6 if frame.stamp_ns in sent else None
            sequence.frames.append(FrameRecord(
                frame.stamp_ns, frame.ground_truth,
                detections_from_message(msg, run.class_names, recording, PREDICTIONS_TOPIC),
                float(msg.latency_ms), {}, bool(msg.is_keyframe), e2e))
    return run


def run_live(source: Source, model: Path, info: dict, work_dir: Path, precision: str = "fp32", threads: int = 1,
             rate: float = 1.0, resolution: str | None = None, domain_id: int | None = None,
             progress: bool = True) -> RunRecord:
    """Play ``source`` (a bag) into a fresh mobileinst_node running ``model`` and record the result."""
    if source.kind != "bag":
        raise InputError(f"{source.path}: live mode plays a bag, not a dataset (mobileinst-synth --bag makes one)")
    work_dir.mkdir(parents=True, exist_ok=True)
    recording, log_path = work_dir / RECORDING, work_dir / "node.log"
    if recording.exists():
        raise InputError(f"{recording} already exists; choose a new --out")
    env = isolated_env(domain_id)
    params, topic = _node_params(source, model, int(info["keyframe_interval"]), precision, threads, resolution)
    with NodeProcess(log_path, node_ros_args(params, topic), env, error=LiveError) as node:
        result = _replay_with_progress(source, recording, env, rate, progress)
        node.check_running()
    run = _assemble(source, info, result, recording)
    run.info["ros_domain_id"] = int(env["ROS_DOMAIN_ID"])
    return run
