"""``make demo`` (``mobileinst-demo``): the real mobileinst_node, end to end, on a replayed rosbag.

1. writes a camera rosbag2: frames of a real video (``--video``, e.g. opencv-doc's vtest.avi of people
   walking, which ``make demo`` fetches from Debian's registry), or else a rendered synthetic video
   (mobileinst-synth) with its ground truth;
2. starts ``mobileinst_node`` in its own process with the shipped model, on a ROS domain of its own
   on loopback (nothing outside this machine sees it) with the package's Fast DDS profile;
3. plays the bag's camera topic through real ROS topics at its recorded rate and records the node's
   InstanceArrays, ModelInfo and /diagnostics, each in its own process (``replay.bag_replay``);
4. writes an overlay video (each camera image with the masks, track ids, classes and scores the node
   published for it) and a summary JSON (with what it saw: tracks and instances per class), and
   prints where they are.

``--depth`` adds depth fusion: the bag also gets an aligned 16UC1 depth image and its CameraInfo per
frame (a wall at 5 m, each ground-truth object at its own distance, 5% holes), played alongside the
colour images into the node running with ``depth_fusion``; its MarkerArrays are recorded too, and the
summary says how many instances got a 3D position and how far their distance is from the truth.

Everything goes to ``--out`` (default ``runs/demo/``), replaced on each run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mobileinst_ros.autolabel.sources import SourceError, open_frames
from mobileinst_ros.data import bags
from mobileinst_ros.data.synth import write_dataset
from mobileinst_ros.messages.instances import decode_instance_masks
from mobileinst_ros.node.mobileinst_node import NODE_NAME, default_model_dir
from mobileinst_ros.overlay import draw_overlay
from mobileinst_ros.replay.bag_replay import ReplayError, recorded_by_stamp, replay
from mobileinst_ros.replay.node_process import NodeProcess, isolated_env, node_ros_args
from mobileinst_ros.runtime.model_dir import ModelLoadError, load_spec

__all__ = ["main"]

PARAMS_FILE = Path(__file__).resolve().parents[2] / "config" / "mobileinst.yaml"
INSTANCES_TOPIC = f"/{NODE_NAME}/instances"
MARKERS_TOPIC = f"/{NODE_NAME}/markers"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
DEPTH_INFO_TOPIC = "/camera/aligned_depth_to_color/camera_info"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
WALL_M = 5.0
MODEL_INFO_TOPIC = f"/{NODE_NAME}/model_info"
DIAGNOSTICS_TOPIC = "/diagnostics"
DEMO_DOMAINS = (101, 200)  # ROS_DOMAIN_ID drawn from these


class DemoError(RuntimeError):
    """A step of the demo that failed; the text says which and why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobileinst-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (replaced)")
    parser.add_argument("--video", type=Path, default=None,
                        help="a real video (or image folder / bag) to play; default: a rendered synthetic video")
    parser.add_argument("--start", type=int, default=0, help="first frame of --video")
    parser.add_argument("--frames", type=int, default=100, help="frames to play")
    parser.add_argument("--fps", type=float, default=10.0, help="camera rate of the bag")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic video")
    parser.add_argument("--topic", default=bags.IMAGE_TOPIC, help="image topic when --video is a bag")
    parser.add_argument("--keyframe-interval", type=int, default=None, help="T (default: the config's)")
    parser.add_argument("--depth", action="store_true",
                        help="also play a synthetic aligned depth image + CameraInfo and run depth fusion")
    return parser


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _object_depth_m(track_id: int) -> float:
    """The synthetic distance of a ground-truth object: 1 to 4 m by its id."""
    return 1.0 + 0.5 * (int(track_id) % 7)


def _depth_topics(width: int, height: int) -> Callable[[int, list], list[tuple[str, Any]]]:
    """Per frame: a 16UC1 depth image registered to the colour image and its CameraInfo (see the module
    docstring), as rosbags messages for ``bags.write_dataset_bag``."""
    types = bags.typestore().types
    fx, cx, cy = 0.8 * width, width / 2 - 0.5, height / 2 - 0.5

    def topics(stamp: int, instances: list) -> list[tuple[str, Any]]:
        millimetres = np.full((height, width), int(WALL_M * 1000), np.uint16)
        for inst in instances:
            millimetres[inst.mask] = int(_object_depth_m(inst.track_id) * 1000)
        millimetres[np.random.default_rng(stamp % 2**32).random((height, width)) < 0.05] = 0
        header = bags.header_message(stamp, "camera")
        depth = types[bags.IMAGE_TYPE](header=header, height=height, width=width, encoding="16UC1", is_bigendian=0,
                                       step=width * 2, data=millimetres.reshape(-1).view(np.uint8))
        info = types[CAMERA_INFO_TYPE](
            header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
            k=np.array([fx, 0, cx, 0, fx, cy, 0, 0, 1], float), r=np.eye(3).reshape(-1),
            p=np.array([fx, 0, cx, 0, 0, fx, cy, 0, 0, 0, 1, 0], float), binning_x=0, binning_y=0,
            roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                          do_rectify=False))
        return [(DEPTH_TOPIC, depth), (DEPTH_INFO_TOPIC, info)]

    return topics


def _make_bag(out: Path, args: argparse.Namespace) -> Path:
    return _video_bag(out, args) if args.video is not None else _synthetic_bag(out, args)


def _video_bag(out: Path, args: argparse.Namespace) -> Path:
    """``--frames`` frames of ``--video`` from ``--start``, resized to the camera size, as a bag."""
    bag, size = out / "input_bag", (args.width, args.height)
    source = open_frames(args.video, topic=args.topic, start=args.start, max_frames=args.frames)
    frames = (rgb if rgb.shape[1::-1] == size else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
              for _, rgb in source.frames())
    count = bags.write_image_bag(frames, bag, fps=args.fps)
    if count == 0:
        raise DemoError(f"{args.video}: no frame at or after frame {args.start}")
    _say(f"wrote {count} frames of {args.video} (from frame {args.start}) as a {args.width}x{args.height} "
         f"camera at {args.fps:g} Hz to {bag}")
    return bag


def _synthetic_bag(out: Path, args: argparse.Namespace) -> Path:
    dataset, bag = out / "dataset", out / "input_bag"
    write_dataset(dataset, videos=1, frames=args.frames, width=args.width, height=args.height, seed=args.seed,
                  progress=False)
    extra = _depth_topics(args.width, args.height) if args.depth else None
    frames = bags.write_dataset_bag(dataset, bag, fps=args.fps, extra=extra)
    _say(f"wrote {frames} synthetic {args.width}x{args.height} frames at {args.fps:g} Hz to {bag}"
         + (" with aligned depth" if args.depth else ""))
    return bag


def _run_node_on_bag(model: Path, bag: Path, out: Path, args: argparse.Namespace) -> tuple[list[tuple[int, int]], Path]:
    """Start the node, replay the bag into it and record its output; (sent list, output bag)."""
    # A domain of its own on loopback: the demo's /camera/image_raw never reaches a robot's graph.
    env, log, recording = isolated_env(domains=DEMO_DOMAINS), out / "node.log", out / "output_bag"
    params: dict[str, object] = {"model_path": model}
    if args.keyframe_interval is not None:
        params["keyframe_interval"] = args.keyframe_interval
    params_file = PARAMS_FILE if PARAMS_FILE.is_file() else None
    remaps, played = {}, [bags.IMAGE_TOPIC]
    topics = {INSTANCES_TOPIC: bags.INSTANCES_TYPE, MODEL_INFO_TOPIC: bags.MODEL_INFO_TYPE,
              DIAGNOSTICS_TOPIC: "diagnostic_msgs/msg/DiagnosticArray"}
    if args.depth:
        params["depth_fusion"] = "true"
        remaps = {"depth/image": DEPTH_TOPIC, "depth/camera_info": DEPTH_INFO_TOPIC}
        played += [DEPTH_TOPIC, DEPTH_INFO_TOPIC]
        topics[MARKERS_TOPIC] = "visualization_msgs/msg/MarkerArray"
    ros_args = node_ros_args(params, bags.IMAGE_TOPIC, params_file, remaps)
    with NodeProcess(log, ros_args, env, error=DemoError) as node:
        _say(f"mobileinst_node is active (ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}, log {log}); "
             f"playing the bag at its recorded rate ...")
        result = replay(bag, recording, played, topics, env=env, final_topic=DIAGNOSTICS_TOPIC)
        node.check_running()
    return result.sent, recording


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    return {"p50": round(float(np.percentile(values, 50)), 1), "p95": round(float(np.percentile(values, 95)), 1)}


def _node_counts(recording: Path) -> dict[str, int]:
    """The node's own counters (received, processed, dropped, lost, rejected, failed) from its last
    /diagnostics message."""
    if DIAGNOSTICS_TOPIC not in bags.bag_topics(recording):
        return {}
    counts: dict[str, int] = {}
    for _, _, msg in bags.read_messages(recording, {DIAGNOSTICS_TOPIC: "diagnostic_msgs/msg/DiagnosticArray"}):
        for status in msg.status:
            if status.name.startswith(f"/{NODE_NAME}"):
                counts = {kv.key[:-len(" total")]: int(kv.value) for kv in status.values if kv.key.endswith(" total")}
    return counts


def _video_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if writer.isOpened():
        return writer, path
    fallback = path.with_suffix(".avi")  # OpenCV builds without an MP4 muxer still write MJPG AVI
    return cv2.VideoWriter(str(fallback), cv2.VideoWriter.fourcc(*"MJPG"), fps, size), fallback


def _caption(image: np.ndarray, text: str) -> None:
    cv2.rectangle(image, (0, 0), (image.shape[1], 22), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def _write_video(bag: Path, outputs: dict[int, tuple[Any, int]], path: Path, fps: float) -> Path:
    """Every camera image with the instances the node published for it; frames it dropped say so."""
    writer, written = None, path
    images = bags.read_messages(bag, {bags.IMAGE_TOPIC: bags.IMAGE_TYPE})
    for index, (_, _, image) in enumerate(images):
        rgb = np.asarray(image.data, np.uint8).reshape(image.height, image.width, 3)
        output = outputs.get(bags.stamp_ns(image.header))
        if output is None:
            frame = rgb.copy()
            text = f"frame {index}: not processed (the node was busy with an earlier frame)"
        else:
            msg = output[0]
            masks = decode_instance_masks(msg)
            frame = draw_overlay(rgb, masks, [i.track_id for i in msg.instances],
                                 [f"{i.class_name} {i.score:.2f}" for i in msg.instances])
            kind = "keyframe" if msg.is_keyframe else "kernels reused"
            text = f"frame {index}: {len(masks)} instances, {kind}, model {msg.latency_ms:.0f} ms"
        _caption(frame, text)
        if writer is None:
            writer, written = _video_writer(path, fps, (frame.shape[1], frame.shape[0]))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if writer is not None:
        writer.release()
    return written


def _summary(model: Path, sent: list[tuple[int, int]], outputs: dict[int, tuple[Any, int]], recording: Path,
             args: argparse.Namespace) -> dict[str, Any]:
    processed = [outputs[stamp] for stamp, _ in sent if stamp in outputs]
    send_time = dict(sent)
    e2e = [(received - send_time[stamp]) / 1e6 for stamp, (_, received) in outputs.items() if stamp in send_time]
    duration_s = (sent[-1][1] - sent[0][1]) / 1e9 + 1 / args.fps if sent else 0.0
    instances = [len(msg.instances) for msg, _ in processed]
    return {
        "model": str(model),
        "camera": {"frames": len(sent), "fps": args.fps, "size": [args.width, args.height],
                   "source": str(args.video) if args.video is not None else "synthetic"},
        "frames_in": len(sent),
        "frames_processed": len(processed),
        "frames_dropped": len(sent) - len(processed),
        "processed_fps": round(len(processed) / duration_s, 2) if duration_s else 0.0,
        "keyframes": sum(bool(msg.is_keyframe) for msg, _ in processed),
        "latency_ms": {"end_to_end": _percentiles(e2e),
                       "model": _percentiles([float(msg.latency_ms) for msg, _ in processed])},
        "instances": {"total": sum(instances), "per_processed_frame": round(float(np.mean(instances)), 2)
                      if instances else 0.0},
        "tracks": len({inst.track_id for msg, _ in processed for inst in msg.instances}),
        "seen": _seen(processed),
        "node_counts": _node_counts(recording),
        **({"depth": _depth_summary(processed)} if args.depth else {}),
        "notes": "end_to_end: image published by the player -> InstanceArray received by the recorder "
                 "(separate processes, one clock); model: the tracker's own time per frame",
    }


def _seen(processed: list[tuple[Any, int]]) -> dict[str, dict[str, float]]:
    """Per class the node published: distinct track ids, and instances per processed frame."""
    tracks: dict[str, set[int]] = {}
    instances: dict[str, int] = {}
    for msg, _ in processed:
        for inst in msg.instances:
            tracks.setdefault(inst.class_name, set()).add(inst.track_id)
            instances[inst.class_name] = instances.get(inst.class_name, 0) + 1
    frames = max(len(processed), 1)
    return {name: {"tracks": len(tracks[name]), "per_frame": round(instances[name] / frames, 2)}
            for name in sorted(instances, key=lambda n: -instances[n])}


def _depth_summary(processed: list[tuple[Any, int]]) -> dict[str, Any]:
    """How many published instances got a 3D position, and their distances (the objects stand 1-4 m away)."""
    located = [inst for msg, _ in processed for inst in msg.instances if inst.position_status == 1]
    total = sum(len(msg.instances) for msg, _ in processed)
    return {"instances": total, "located": len(located),
            "distance_m": _percentiles([float(inst.distance) for inst in located]),
            "notes": "located: position_status POSITION_OK; distance from the camera centre"}


def _print_summary(summary: dict[str, Any], video: Path, path: Path) -> None:
    lat = summary["latency_ms"]
    print()
    print(f"mobileinst demo: the real node on a replayed rosbag ({summary['camera']['source']})")
    print(f"  frames in / processed / dropped : {summary['frames_in']} / {summary['frames_processed']} / "
          f"{summary['frames_dropped']}  (camera {summary['camera']['fps']:g} Hz, processed "
          f"{summary['processed_fps']:g} fps)")
    print(f"  latency p50 / p95               : end to end {lat['end_to_end']['p50']} / {lat['end_to_end']['p95']} ms,"
          f" model {lat['model']['p50']} / {lat['model']['p95']} ms")
    print(f"  instances / tracks              : {summary['instances']['total']} "
          f"({summary['instances']['per_processed_frame']} per frame) / {summary['tracks']}")
    seen = ", ".join(f"{name}: {v['tracks']} track{'s' * (v['tracks'] != 1)}, {v['per_frame']:g} per frame"
                     for name, v in summary["seen"].items())
    print(f"  what it saw                     : {seen or 'nothing'}")
    if "depth" in summary:
        depth = summary["depth"]
        print(f"  3D (depth fusion)               : {depth['located']} of {depth['instances']} instances located, "
              f"distance p50 / p95 {depth['distance_m']['p50']} / {depth['distance_m']['p95']} m")
    print(f"  overlay video                   : {video}")
    print(f"  summary                         : {path}")


def run(args: argparse.Namespace) -> int:
    model = (args.model or default_model_dir()).resolve()
    try:
        load_spec(model)
    except ModelLoadError as error:
        raise DemoError(f"no usable model: {error}") from None
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _say(f"model {model}")
    bag = _make_bag(out, args)
    sent, recording = _run_node_on_bag(model, bag, out, args)
    if not sent:
        raise DemoError("the player sent no image")
    outputs = recorded_by_stamp(recording, INSTANCES_TOPIC)
    if not outputs:
        raise DemoError(f"the node published no InstanceArray; see {out / 'node.log'}")
    _say("writing the overlay video ...")
    video = _write_video(bag, outputs, out / "overlay.mp4", args.fps)
    summary = _summary(model, sent, outputs, recording, args)
    summary["outputs"] = {"video": str(video), "input_bag": str(bag), "output_bag": str(recording),
                          "node_log": str(out / "node.log")}
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary, video, path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.frames < 1 or args.fps <= 0 or args.width < 32 or args.height < 32:
        print("mobileinst-demo: error: --frames >= 1, --fps > 0, --width and --height >= 32", file=sys.stderr)
        return 2
    if args.video is not None and (args.depth or args.start < 0):
        print("mobileinst-demo: error: --depth needs the synthetic video (its depth comes from the ground truth); "
              "--start >= 0", file=sys.stderr)
        return 2
    try:
        return run(args)
    except (DemoError, ReplayError, SourceError, bags.BagError, OSError) as error:
        print(f"mobileinst-demo: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
