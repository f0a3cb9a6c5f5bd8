"""``mobileinst-bench``: per-stage latency of MobileInst on one CPU core, side by side in ONE process.

Every configuration (resolution x precision x keyframe interval, and the peer heads) runs in the same
process with one onnxruntime thread, interleaved round by round over the same video (synthetic shapes, or
30 frames of ``--video``: a real model follows few instances on shapes, and a non-keyframe with nothing to
follow skips the mask decoder), so
that ratios hold on a noisy machine; each configuration's first frame of a round is not recorded
(cold caches after another configuration). Peers (``bench/peers.py``) are a SparseInst-style and a
YOLACT-style head on MobileInst's own backbone graphs and input; they are exported (random weights)
in a child process so that this process never imports torch and its peak RSS is the robot's.
``--peer NAME=PATH`` (repeatable) adds any exported YOLO-seg ONNX graph (``bench/yolo_seg.py``: its
letterbox, network, NMS and mask assembly) on the same 640x480 frames in the same rounds.

Prints a table; ``--json PATH`` writes ``latency_ms`` (per stage and per frame), ``ratios``
(``t3_over_t1``, ``int8_over_fp32``, ``mobileinst_over_sparseinst``, ``mobileinst_over_yolact``,
``non_keyframe_over_keyframe`` and, per ``--peer`` NAME, ``{fp32,int8}_{T1,T3}_over_NAME``; with
``--non-keyframe-scale`` also ``T3-scaled`` (non-keyframes' shallow backbone on a smaller image) and its ratios, at
640x480), the same on this process's CPU time (``ratios_cpu_time``: a loaded shared core inflates
wall time), ``targets`` and ``peak_rss_mb``.
"""
from __future__ import annotations

import os

# one core for numpy's BLAS too (mask matmuls, YOLACT assembly): set before numpy is first imported
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from mobileinst_ros.autolabel.sources import open_frames
from mobileinst_ros.bench import write_json
from mobileinst_ros.bench.peers import PEER_IO, sparseinst_postprocess, yolact_postprocess, yolact_priors
from mobileinst_ros.bench.yolo_seg import YoloSegModel, yolo_seg_postprocess
from mobileinst_ros.data.synth import generate_video
from mobileinst_ros.runtime.engine import Engine, ModelLoadError
from mobileinst_ros.runtime.model_dir import parse_resolution
from mobileinst_ros.runtime.sessions import cpu_session, session_options
from mobileinst_ros.tracking.tracker import KernelTracker

__all__ = ["main"]

STAGES = ("preprocess", "backbone", "instance_decoder", "postprocess", "tracking")
PEER_STAGES = ("preprocess", "backbone", "head", "postprocess")
REFERENCE = "640x480"
# issue targets: (ratio or latency key, limit)
TARGETS = {
    "t3_over_t1": 0.8, "int8_over_fp32": 0.6, "mobileinst_over_sparseinst": 0.6, "mobileinst_over_yolact": 1.0,
    "fp32_t3_mean_ms": 100.0, "int8_t3_mean_ms": 60.0, "non_keyframe_over_keyframe": 0.35,
}
# issue 11, per --peer NAME (INT8 ratios for a peer whose NAME contains "int8", else FP32 ones)
PEER_TARGETS = {"T1": 0.7, "T3": 0.45, "T3-scaled": 0.45}
SCALED_TARGETS = {"non_keyframe_over_keyframe_fp32_scaled": 0.35}  # with --non-keyframe-scale


@dataclass
class Series:
    """Recorded frames of one configuration."""

    name: str
    stages: tuple[str, ...]
    totals: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU ms: immune to time-sharing
    per_stage: dict[str, list[float]] = field(default_factory=dict)
    keyframes: list[bool] = field(default_factory=list)

    def add(self, total: float, timings: dict[str, float], keyframe: bool = True, cpu: float = float("nan")) -> None:
        self.totals.append(total)
        self.cpu.append(cpu)
        self.keyframes.append(keyframe)
        for stage in self.stages:
            self.per_stage.setdefault(stage, []).append(timings.get(stage, 0.0))

    def summary(self) -> dict:
        totals = np.asarray(self.totals)
        key = np.asarray(self.keyframes)
        out = {stage: round(float(np.mean(v)), 2) for stage, v in self.per_stage.items()}
        out.update(mean=round(float(totals.mean()), 2), median=round(float(np.median(totals)), 2),
                   p90=round(float(np.percentile(totals, 90)), 2), frames=int(len(totals)),
                   keyframe_fraction=round(float(key.mean()), 3))
        if key.any() and not key.all():
            out["keyframe_mean"] = round(float(totals[key].mean()), 2)
            out["non_keyframe_mean"] = round(float(totals[~key].mean()), 2)
            out["keyframe_median"] = round(float(np.median(totals[key])), 2)
            out["non_keyframe_median"] = round(float(np.median(totals[~key])), 2)
        cpu = np.asarray(self.cpu)
        if np.isfinite(cpu).all():
            out["cpu_mean"] = round(float(cpu.mean()), 2)
            out["cpu_median"] = round(float(np.median(cpu)), 2)
            if key.any() and not key.all():
                out["keyframe_cpu_median"] = round(float(np.median(cpu[key])), 2)
                out["non_keyframe_cpu_median"] = round(float(np.median(cpu[~key])), 2)
        return out


class MobileInstRun:
    """One tracker configuration fed frames of one video in order."""

    def __init__(self, engine: Engine, frames: list[np.ndarray], interval: int, name: str, **tracker_options):
        self.tracker = KernelTracker(engine, keyframe_interval=interval, **tracker_options)
        self.frames, self.next = frames, 0
        self.series = Series(name, STAGES)

    def step(self, record: bool) -> None:
        cpu = time.process_time()
        result = self.tracker.process(self.frames[self.next % len(self.frames)])
        cpu = (time.process_time() - cpu) * 1000
        self.next += 1
        if record:
            self.series.add(result.latency_ms, result.timings_ms, result.is_keyframe, cpu)


class PeerRun:
    """A peer head on the engine's own backbone graphs: image -> x3, x4, x5 -> head -> masks."""

    def __init__(self, engine: Engine, path: Path, kind: str, frames: list[np.ndarray], threads: int, name: str):
        self.session = cpu_session(path, session_options(threads))
        self.engine, self.kind, self.frames, self.next = engine, kind, frames, 0
        self.priors: np.ndarray | None = None
        self.series = Series(name, PEER_STAGES)

    def step(self, record: bool) -> None:
        t0 = time.perf_counter()
        prepared = self.engine.prepare(self.frames[self.next % len(self.frames)])
        self.next += 1
        t1 = time.perf_counter()
        x3 = self.engine.shallow(prepared)
        x4, x5, _ = self.engine.deep(prepared.resolution, x3)
        t2 = time.perf_counter()
        names = PEER_IO[self.kind][1]
        outputs = dict(zip(names, self.session.run(list(names), {"x3": x3, "x4": x4, "x5": x5})))
        t3 = time.perf_counter()
        e = self.engine
        if self.kind == "sparseinst":
            sparseinst_postprocess(outputs, prepared.geometry, e.score_threshold, e.mask_threshold, e.max_instances)
        else:
            if self.priors is None:
                self.priors = yolact_priors(prepared.resolution)
            yolact_postprocess(outputs, self.priors, prepared.geometry, e.max_instances)
        t4 = time.perf_counter()
        if record:
            ms = [(b - a) * 1000 for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4))]
            self.series.add((t4 - t0) * 1000, dict(zip(PEER_STAGES, ms)))


class YoloPeerRun:
    """An exported YOLO-seg graph on the same frames: letterbox, network, NMS and mask assembly."""

    def __init__(self, path: Path, frames: list[np.ndarray], threads: int, max_det: int, name: str):
        self.model = YoloSegModel(path, threads)
        self.frames, self.next, self.max_det = frames, 0, max_det
        self.series = Series(name, PEER_STAGES)

    def step(self, record: bool) -> None:
        cpu, t0 = time.process_time(), time.perf_counter()
        geometry, tensor = self.model.prepare(self.frames[self.next % len(self.frames)])
        self.next += 1
        t1 = time.perf_counter()
        detections, prototypes = self.model.run(tensor)
        t2 = time.perf_counter()
        yolo_seg_postprocess(detections, prototypes, geometry, max_det=self.max_det)
        t3 = time.perf_counter()
        if record:  # the whole network sits in the backbone column
            ms = [(b - a) * 1000 for a, b in ((t0, t1), (t1, t2), (t2, t2), (t2, t3))]
            self.series.add((t3 - t0) * 1000, dict(zip(PEER_STAGES, ms)), cpu=(time.process_time() - cpu) * 1000)


def _export_peers_child(shapes: dict, num_classes: int, out_dir: str) -> None:
    from mobileinst_ros.bench.peers import export_peers

    export_peers(shapes, num_classes, out_dir)


def export_peers_elsewhere(engine: Engine, resolution: tuple[int, int], out_dir: Path) -> dict[str, Path]:
    """Export the peer heads in a child process (torch stays out of this one)."""
    w, h = resolution
    prepared = engine.prepare(np.zeros((h, w, 3), np.uint8))
    x3 = engine.shallow(prepared)
    shapes = {n: tuple(int(d) for d in t.shape) for n, t in zip(("x3", "x4", "x5"), (x3, *engine.deep(resolution, x3)[:2]))}
    child = multiprocessing.get_context("spawn").Process(
        target=_export_peers_child, args=(shapes, len(engine.class_names), str(out_dir)))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"exporting the peer heads failed (exit code {child.exitcode})")
    return {name: out_dir / f"{name}.onnx" for name in PEER_IO}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / b, 3)


def _mean(tree: dict, *keys: str, stat: str = "mean") -> float | None:
    for key in keys:
        tree = tree.get(key, {})
    return tree.get(stat)


def _non_keyframe_over_keyframe(ref: dict, prec: str = "fp32", label: str = "T3", stat: str = "mean") -> float | None:
    t3 = ref.get(prec, {}).get(label, {})
    return _ratio(t3.get(f"non_keyframe_{stat}"), t3.get(f"keyframe_{stat}"))


def _ratios(latency: dict, peers: dict, yolo_peers: list[str]) -> dict:
    """The issue's ratios at 640x480 (MobileInst vs peers: per-image work, T=1; vs YOLO-seg peers: T=1
    and the T=3 average, each precision)."""
    ref, peer = latency.get(REFERENCE, {}), peers.get(REFERENCE, {})
    versus = {f"{prec}_{t}_over_{name}": _ratio(_mean(ref, prec, t), _mean(peer, name))
              for name in yolo_peers for prec in ("fp32", "int8") for t in ("T1", "T3", "T3-whole", "T3-scaled")}
    return {
        "t3_over_t1": _ratio(_mean(ref, "fp32", "T3"), _mean(ref, "fp32", "T1")),
        "int8_over_fp32": _ratio(_mean(ref, "int8", "T1"), _mean(ref, "fp32", "T1")),
        "int8_over_fp32_t3": _ratio(_mean(ref, "int8", "T3"), _mean(ref, "fp32", "T3")),
        "mobileinst_over_sparseinst": _ratio(_mean(ref, "fp32", "T1"), _mean(peer, "sparseinst")),
        "mobileinst_over_yolact": _ratio(_mean(ref, "fp32", "T1"), _mean(peer, "yolact")),
        "adaptive_t3_over_t1": _ratio(_mean(ref, "fp32", "T3-adaptive"), _mean(ref, "fp32", "T1")),
        "kernel_reuse_t3_over_t1": _ratio(_mean(ref, "fp32", "T3-kernels"), _mean(ref, "fp32", "T1")),
        "fp32_t3_mean_ms": _mean(ref, "fp32", "T3"),
        "int8_t3_mean_ms": _mean(ref, "int8", "T3"),
        "non_keyframe_over_keyframe": _non_keyframe_over_keyframe(ref),
        **{f"non_keyframe_over_keyframe_{prec}_{kind}": _non_keyframe_over_keyframe(ref, prec, f"T3-{kind}")
           for prec in ("fp32", "int8") for kind in ("whole", "scaled")},
        **versus,
    }


def _cpu_ratios(latency: dict, peers: dict, yolo_peers: list[str]) -> dict:
    """The YOLO-seg ratios on this process's CPU time (means; non-keyframe over keyframe: medians),
    which other processes' time slices on a shared core do not inflate."""
    ref, peer = latency.get(REFERENCE, {}), peers.get(REFERENCE, {})
    return {
        "t3_over_t1": _ratio(_mean(ref, "fp32", "T3", stat="cpu_mean"), _mean(ref, "fp32", "T1", stat="cpu_mean")),
        "non_keyframe_over_keyframe": _non_keyframe_over_keyframe(ref, stat="cpu_median"),
        "non_keyframe_over_keyframe_int8": _non_keyframe_over_keyframe(ref, "int8", stat="cpu_median"),
        **{f"non_keyframe_over_keyframe_{prec}_{kind}":
           _non_keyframe_over_keyframe(ref, prec, f"T3-{kind}", "cpu_median")
           for prec in ("fp32", "int8") for kind in ("whole", "scaled")},
        **{f"{prec}_{t}_over_{name}": _ratio(_mean(ref, prec, t, stat="cpu_mean"), _mean(peer, name, stat="cpu_mean"))
           for name in yolo_peers for prec in ("fp32", "int8") for t in ("T1", "T3", "T3-whole", "T3-scaled")},
    }


def _targets(ratios: dict, yolo_peers: list[str]) -> dict:
    limits = dict(TARGETS, **SCALED_TARGETS)
    for name in yolo_peers:
        prec = "int8" if "int8" in name.lower() else "fp32"
        limits.update({f"{prec}_{t}_over_{name}": limit for t, limit in PEER_TARGETS.items()})
    return {f"{key} <= {limit}": None if ratios.get(key) is None else ratios[key] <= limit
            for key, limit in limits.items() if "scaled" not in key or ratios.get(key) is not None}


def _table(latency: dict, peers: dict) -> str:
    head = f"{'resolution':<10} {'config':<18}" + "".join(f"{s[:11]:>12}" for s in STAGES) + f"{'mean':>9}{'p90':>9}{'key%':>6}"
    lines = [head, "-" * len(head)]  # peers: their head sits in the instance_decoder column
    for res, precs in latency.items():
        for prec, runs in precs.items():
            for t, s in runs.items():
                lines.append(f"{res:<10} {prec + ' ' + t:<18}" + "".join(f"{s.get(k, 0):>12.1f}" for k in STAGES)
                             + f"{s['mean']:>9.1f}{s['p90']:>9.1f}{100 * s['keyframe_fraction']:>6.0f}")
    for res, runs in peers.items():
        for name, s in runs.items():
            cells = [s["preprocess"], s["backbone"], s["head"], s["postprocess"], 0.0]
            label = name + " head" if name in PEER_IO else name  # a YOLO-seg peer: its whole network
            lines.append(f"{res:<10} {label:<18}" + "".join(f"{c:>12.1f}" for c in cells)
                         + f"{s['mean']:>9.1f}{s['p90']:>9.1f}{100:>6.0f}")
    return "\n".join(lines)


def _machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "machine": platform.machine(), "onnxruntime": ort.__version__,
            "python": platform.python_version(), "cores_seen": os.cpu_count()}


def _peer_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=PATH with NAME made of letters, digits, '-', '_', '.', "
                                         f"got {text!r}")
    return name, Path(path)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mobileinst-bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/default", help="exported model directory")
    parser.add_argument("--resolution", action="append", default=None,
                        help="WxH, repeatable (default: 640x480 and 320x320)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (each runs every configuration)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    parser.add_argument("--frames", type=int, default=6, help="frames per configuration per round (multiple of 3)")
    parser.add_argument("--peer-frames", type=int, default=1, help="peer frames per round")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--no-int8", action="store_true", help="skip INT8 (model without INT8 graphs)")
    parser.add_argument("--no-peers", action="store_true", help="skip the SparseInst/YOLACT-style heads")
    parser.add_argument("--peer", action="append", default=[], metavar="NAME=PATH", type=_peer_arg,
                        help="an exported YOLO-seg ONNX graph to time beside MobileInst (repeatable; "
                             "scripts/export_yolo_peer.sh makes them)")
    parser.add_argument("--video", type=Path,
                        help="time on 30 frames of this video, image folder or rosbag2 (resized to each resolution) "
                             "instead of a synthetic-shapes video")
    parser.add_argument("--video-start", type=int, default=0, help="first frame of --video")
    parser.add_argument("--non-keyframe-scale", type=float, default=None, metavar="S",
                        help="also time T=3 with non-keyframes' shallow backbone on the image shrunk by S "
                             "(config T3-scaled, both precisions, at 640x480)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.frames < 1 or args.warmup < 0 or args.peer_frames < 0:
        parser.error("--rounds and --frames must be >= 1, --warmup and --peer-frames >= 0")
    names = [name for name, _ in args.peer]
    if len(set(names)) != len(names) or set(names) & set(PEER_IO):
        parser.error(f"--peer names must be unique and not {sorted(PEER_IO)}, got {names}")
    return args


def _build_runs(args: argparse.Namespace, resolutions: list[tuple[int, int]], peer_dir: Path):
    precisions = ["fp32"] + ([] if args.no_int8 else ["int8"])
    engines = {p: Engine(args.model, threads=args.threads, precision=p) for p in precisions}
    missing = [f"{w}x{h}" for w, h in resolutions if (w, h) not in engines["fp32"].resolutions]
    if missing:
        raise ModelLoadError(f"{args.model}: no graphs at {missing}; exported: "
                             f"{[f'{w}x{h}' for w, h in engines['fp32'].resolutions]}")
    runs: dict[tuple, MobileInstRun | PeerRun | YoloPeerRun] = {}
    video = _video_frames(args.video, args.video_start) if args.video else None
    for w, h in resolutions:
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in video] if video \
            else generate_video(seed=2024, index=0, frames=30, width=w, height=h).frames
        for prec, engine in engines.items():
            configs = [("T1", 1, {}), ("T3", 3, {})]
            if f"{w}x{h}" == REFERENCE:
                configs += [("T3-whole", 3, {"non_keyframe_crops": False})]
                configs += [("T3-adaptive", 3, {"adaptive_keyframes": True}),
                            ("T3-kernels", 3, {"reuse_mode": "kernels"})] if prec == "fp32" else []
                configs += [("T3-scaled", 3, {"non_keyframe_scale": args.non_keyframe_scale})] \
                    if args.non_keyframe_scale else []
            for label, interval, options in configs:
                runs[(f"{w}x{h}", prec, label)] = MobileInstRun(engine, frames, interval, label, **options)
        if not args.no_peers and f"{w}x{h}" == REFERENCE:
            paths = export_peers_elsewhere(engines["fp32"], (w, h), peer_dir)
            for kind, path in paths.items():
                runs[(f"{w}x{h}", "peer", kind)] = PeerRun(engines["fp32"], path, kind, frames, args.threads, kind)
        if f"{w}x{h}" == REFERENCE:
            for name, path in args.peer:
                runs[(f"{w}x{h}", "yolo", name)] = YoloPeerRun(path, frames, args.threads,
                                                               engines["fp32"].max_instances, name)
    if args.peer and REFERENCE not in [f"{w}x{h}" for w, h in resolutions]:
        raise ValueError(f"--peer runs at {REFERENCE}: add --resolution {REFERENCE}")
    return runs


def _video_frames(path: Path, start: int, count: int = 30) -> list[np.ndarray]:
    """``count`` RGB frames of a video, image folder or bag from ``start``."""
    frames = [rgb for _, (_, rgb) in zip(range(count), open_frames(path, start=start).frames())]
    if len(frames) < count:
        raise ValueError(f"--video {path}: {len(frames)} frames from frame {start}, the benchmark needs {count}")
    return frames


def run_benchmark(args: argparse.Namespace) -> dict:
    """Interleaved rounds over every configuration; returns the JSON document."""
    resolutions = [parse_resolution(r) for r in (args.resolution or [REFERENCE, "320x320"])]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mobileinst-bench-") as peer_dir:
        runs = _build_runs(args, resolutions, Path(peer_dir))
        keys = list(runs)
        for r in range(args.warmup + args.rounds):
            # rotate the order so that slow drifts of the machine spread over all configurations
            for key in keys[r % len(keys):] + keys[: r % len(keys)]:
                count = args.peer_frames if key[1] == "peer" else args.frames
                # the first frame after a switch finds the caches full of another configuration's
                # weights and activations; a robot runs one configuration: keep it out of the record
                runs[key].step(record=False)
                for _ in range(count):
                    runs[key].step(record=r >= args.warmup)
    latency: dict = {}
    peers: dict = {}
    for (res, prec, label), run in runs.items():
        if not run.series.totals:
            continue
        target = (peers.setdefault(res, {}) if prec in ("peer", "yolo")
                  else latency.setdefault(res, {}).setdefault(prec, {}))
        target[label] = run.series.summary()
    yolo_peers = [name for name, _ in args.peer]
    ratios = _ratios(latency, peers, yolo_peers)
    return {
        "model": str(args.model), "video": f"{args.video}@{args.video_start}" if args.video else "synthetic",
        "threads": args.threads, "rounds": args.rounds, "non_keyframe_scale": args.non_keyframe_scale,
        "frames_per_round": args.frames, "machine": _machine(),
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "latency_ms": latency, "peers_ms": peers, "ratios": ratios, "targets": _targets(ratios, yolo_peers),
        "ratios_cpu_time": _cpu_ratios(latency, peers, yolo_peers),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        result = run_benchmark(args)
    except (ModelLoadError, ValueError, RuntimeError) as err:
        print(f"mobileinst-bench: error: {err}", file=sys.stderr)
        return 1
    print(_table(result["latency_ms"], result["peers_ms"]))
    print("ratios:", json.dumps(result["ratios"]))
    if args.peer:
        print("ratios on CPU time:", json.dumps(result["ratios_cpu_time"]))
    print("targets:", json.dumps(result["targets"]))
    print(f"peak RSS {result['peak_rss_mb']} MB, load average before/after "
          f"{result['load_average']['before'][0]}/{result['load_average']['after'][0]}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
