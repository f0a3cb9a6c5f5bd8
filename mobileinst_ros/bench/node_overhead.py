"""Node overhead next to model time: what mobileinst_node adds to each frame (image conversion, mask RLE
encoding into an InstanceArray, CDR serialisation as publishing does) against ``tracker.process``.

    python -m mobileinst_ros.bench.node_overhead [--model models/default] [--frames 60] [--size 640x480]

Frames are a synthetic video (mobileinst-synth) arriving as bgr8 sensor_msgs/Image, the common
camera encoding that needs a colour conversion. When the model finds no instances (untrained weights),
the video's ground-truth masks stand in so that mask encoding is timed on realistic masks. Prints a
JSON report; the target is overhead <= 5% of model time at 640x480. End-to-end latency across
processes is measured by ``make demo`` (summary.json, latency_ms.end_to_end).

Depth fusion is timed as its own stage (target <= 3 ms per 640x480 frame): a 16UC1 depth image in
which every ground-truth object of the frame stands at its own distance in front of a wall, with
holes, converted, fused with the instances' masks, and turned into the RViz MarkerArray.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from mobileinst_ros.data.synth import write_dataset
from mobileinst_ros.data.ytvis import load_ytvis
from mobileinst_ros.geometry.depth_fusion import Intrinsics, locate_instances
from mobileinst_ros.messages.images import depth_image_array, image_to_rgb
from mobileinst_ros.messages.instances import instance_array, rclpy_types
from mobileinst_ros.messages.markers import instance_markers
from mobileinst_ros.node.mobileinst_node import default_model_dir
from mobileinst_ros.runtime.engine import Engine, ModelLoadError
from mobileinst_ros.runtime.model_dir import parse_resolution
from mobileinst_ros.tracking.tracker import KernelTracker

__all__ = ["measure", "main"]


def _frames(size: tuple[int, int], count: int, directory: Path) -> list[tuple[np.ndarray, list]]:
    """(RGB image, ground-truth instances) of a synthetic video."""
    write_dataset(directory, videos=1, frames=count, width=size[0], height=size[1], seed=7, progress=False)
    dataset = load_ytvis(directory)
    return [(dataset.frame(0, t), dataset.frame_instances(0, t)) for t in range(dataset.videos[0].length)]


def _bgr8(rgb: np.ndarray) -> Image:
    height, width = rgb.shape[:2]
    return Image(height=height, width=width, encoding="bgr8", step=width * 3,
                 data=np.ascontiguousarray(rgb[:, :, ::-1]).tobytes())


def _depth16(ground_truth: list, size: tuple[int, int]) -> Image:
    """16UC1 millimetres: a wall at 5 m, object k at 1 + 0.5 * (k % 6) m, every 7th pixel a hole."""
    millimetres = np.full((size[1], size[0]), 5000, np.uint16)
    for k, inst in enumerate(ground_truth):
        millimetres[inst.mask] = 1000 + 500 * (k % 6)
    millimetres.reshape(-1)[::7] = 0
    return Image(height=size[1], width=size[0], encoding="16UC1", step=size[0] * 2, data=millimetres.tobytes())


def measure(model: Path, size: tuple[int, int], count: int, threads: int = 1) -> dict:
    """Per-frame medians (ms) of conversion, model, depth fusion, message and serialisation, and the
    overhead ratio (without depth fusion, which is optional)."""
    engine = Engine(model, threads=threads)
    tracker = KernelTracker(engine)
    with tempfile.TemporaryDirectory() as tmp:
        frames = _frames(size, count, Path(tmp))
    times: dict[str, list[float]] = {"convert": [], "model": [], "message": [], "serialize": [], "depth_fusion": []}
    intrinsics = Intrinsics(0.8 * size[0], 0.8 * size[0], size[0] / 2 - 0.5, size[1] / 2 - 0.5, *size)
    instances_per_frame, stand_in = [], 0
    for rgb, ground_truth in frames:
        msg, depth_msg = _bgr8(rgb), _depth16(ground_truth, size)
        t0 = time.perf_counter()
        image = image_to_rgb(msg)
        t1 = time.perf_counter()
        result = tracker.process(image)
        t2 = time.perf_counter()
        instances = result.instances
        if not instances:
            stand_in += 1
            instances = ground_truth
        t3 = time.perf_counter()
        positions = locate_instances(depth_image_array(depth_msg), intrinsics, [i.mask for i in instances])
        instance_markers(Header(), instances, positions, engine.class_names)
        t4 = time.perf_counter()
        out = instance_array(rclpy_types(), Header(), size[1], size[0], instances, engine.class_names,
                             positions=positions)
        t5 = time.perf_counter()
        serialize_message(out)
        t6 = time.perf_counter()
        stages = {"convert": (t0, t1), "model": (t1, t2), "depth_fusion": (t3, t4), "message": (t4, t5),
                  "serialize": (t5, t6)}
        for key, (a, b) in stages.items():
            times[key].append((b - a) * 1e3)
        instances_per_frame.append(len(instances))
    medians = {key: round(float(np.median(v)), 2) for key, v in times.items()}
    overhead = medians["convert"] + medians["message"] + medians["serialize"]
    return {"model": str(model), "size": f"{size[0]}x{size[1]}", "frames": len(frames), "threads": threads,
            "median_ms": medians, "node_overhead_ms": round(overhead, 2),
            "overhead_fraction_of_model": round(overhead / medians["model"], 4),
            "depth_fusion_ms": {"median": medians["depth_fusion"],
                                "p95": round(float(np.percentile(times["depth_fusion"], 95)), 2)},
            "instances_per_frame": round(float(np.mean(instances_per_frame)), 2),
            "frames_with_ground_truth_masks_standing_in": stand_in}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobileinst_ros.bench.node_overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="640x480", help="camera image size WxH")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        size = parse_resolution(args.size)
        report = measure(args.model or default_model_dir(), size, args.frames, args.threads)
    except (ModelLoadError, ValueError) as error:
        print(f"node benchmark: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
