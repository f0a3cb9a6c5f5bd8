"""Architecture options timed side by side: random-weight MobileInst variants against today's model and
YOLO-seg peers, in ONE process, interleaved rounds, one thread (latency does not depend on weights).

    python -m mobileinst_ros.bench.variants [--variant NAME ...] [--peer NAME=PATH ...] [--rounds 5]
        [--out runs/variants] [--json PATH]

Each variant is a model-config override (``VARIANTS``) plus an export layout; it is built with random
weights and exported at 640x480 by ``mobileinst-export``'s code in a child process (torch stays out of
the timing process), then run through ``Engine`` + ``KernelTracker`` at T=1 and T=3 on the same
synthetic frames as the peers. Random weights give every query about the same low score, and a
non-keyframe without instances skips its mask decoder; so a variant's keyframe takes its ``INSTANCES``
best queries as its instances (``_top_queries`` replaces the engine's selection; random masks cover
the whole image, and two cost about what the trained model's 5.5 small masks a frame cost on this
video). ``models/default`` (trained) runs too, with the engine's own selection. Ratios:
each variant against ``baseline`` (today's architecture, random weights) and against every peer.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import functools
import multiprocessing
import sys
from pathlib import Path

import numpy as np

from mobileinst_ros.bench import write_json
from mobileinst_ros.bench.bench import MobileInstRun, YoloPeerRun, _machine, _peer_arg
from mobileinst_ros.data.synth import generate_video
from mobileinst_ros.runtime.engine import Detections, Engine, Features, ModelLoadError
from mobileinst_ros.runtime.postprocess import mask_logits, mask_stats, query_scores
from mobileinst_ros.runtime.preprocess import Geometry

__all__ = ["VARIANTS", "main"]

RESOLUTION = (640, 480)
# name -> (model config override, export layout). "shared": symbolic height/width (today's default
# export); "per-resolution": static shapes, every size folded to a constant.
VARIANTS: dict[str, tuple[dict, str]] = {
    "baseline": ({}, "shared"),
    "static": ({}, "per-resolution"),
    "md_sum": ({"mask_decoder": {"fuse": "sum"}}, "shared"),
    "md_no_enh8": ({"mask_decoder": {"enhance_stride8": False}}, "shared"),
    "md_nearest": ({"mask_decoder": {"upsample": "nearest"}}, "shared"),
    "md_dim64": ({"kernel_dim": 64, "mask_decoder": {"dim": 64}}, "shared"),
    "md_lean64": ({"kernel_dim": 64, "mask_decoder": {"dim": 64, "fuse": "sum", "enhance_stride8": False}},
                  "shared"),
    "dense_stem": ({"backbone": {"stem": "dense"}}, "shared"),
    "global_depth2": ({"backbone": {"global_depth": 2}}, "shared"),
    "stem_md64": ({"kernel_dim": 64, "backbone": {"stem": "dense"}, "mask_decoder": {"dim": 64, "fuse": "sum"}},
                  "per-resolution"),
    "skip_deep": ({"backbone": {"skip_blocks": [7, 10, 13, 14]}}, "shared"),
    "skip_shallow2": ({"backbone": {"skip_blocks": [2]}}, "shared"),
    "lean": ({"kernel_dim": 64, "backbone": {"stem": "dense", "skip_blocks": [7, 10, 13, 14]},
              "mask_decoder": {"dim": 64, "fuse": "sum"}}, "per-resolution"),
    "lean_skip2": ({"kernel_dim": 64, "backbone": {"stem": "dense", "skip_blocks": [2, 7, 10, 13, 14]},
                    "mask_decoder": {"dim": 64, "fuse": "sum"}}, "per-resolution"),
    "lean_skip24": ({"kernel_dim": 64, "backbone": {"stem": "dense", "skip_blocks": [2, 4, 7, 10, 13, 14]},
                     "mask_decoder": {"dim": 64, "fuse": "sum"}}, "per-resolution"),
    # the real-world model's decoders (config/train/real.yaml): coordinates, stride-8 activation maps,
    # location prior
    "activation": ({"mask_decoder": {"coords": True}, "instance_decoder": {"local": "activation"}}, "shared"),
    "activation_location": ({"location_prior": True, "mask_decoder": {"coords": True},
                             "instance_decoder": {"local": "activation"}}, "shared"),
    # ... on leaner networks (the ImageNet stem kept, so training can freeze it; or the dense stem)
    "lean_activation": ({"kernel_dim": 64, "backbone": {"skip_blocks": [2, 7, 10, 13, 14]},
                         "mask_decoder": {"dim": 64, "fuse": "sum", "coords": True},
                         "instance_decoder": {"local": "activation"}}, "shared"),
    "lean_skip2_activation": ({"kernel_dim": 64, "backbone": {"stem": "dense", "skip_blocks": [2, 7, 10, 13, 14]},
                               "mask_decoder": {"dim": 64, "fuse": "sum", "coords": True},
                               "instance_decoder": {"local": "activation"}}, "shared"),
    # lean_activation with a 128-wide mask decoder and 128-long kernels (sharper masks: docs/training.md)
    "lean_activation_dim128": ({"kernel_dim": 128, "backbone": {"skip_blocks": [2, 7, 10, 13, 14]},
                                "mask_decoder": {"dim": 128, "fuse": "sum", "coords": True},
                                "instance_decoder": {"local": "activation"}}, "shared"),
    # lean_activation with the class read from x4 under each query's mask (docs/training.md)
    "lean_activation_mask_class": ({"kernel_dim": 64, "backbone": {"skip_blocks": [2, 7, 10, 13, 14]},
                                    "mask_decoder": {"dim": 64, "fuse": "sum", "coords": True},
                                    "instance_decoder": {"local": "activation", "mask_pooled_class": True}},
                                   "shared"),
}
CLASSES = [f"class{i}" for i in range(6)]
INSTANCES = 2


def _export_child(names: list[str], out: str) -> None:
    import torch

    from mobileinst_ros.export.export import export_model
    from mobileinst_ros.model import build_model

    torch.set_num_threads(1)
    for name in names:
        cfg, layout = VARIANTS[name]
        cfg = {**cfg, "backbone": {**cfg.get("backbone", {}), "pretrained": False}}
        torch.manual_seed(0)
        model = build_model(cfg, len(CLASSES)).eval()
        export_model(model, CLASSES, Path(out) / name, [RESOLUTION], {"config": {"model": cfg}}, layout=layout)
        print(f"exported {name}", flush=True)


def export_variants(names: list[str], out: Path) -> None:
    """Export the variants missing under ``out`` (a child process imports torch)."""
    todo = [n for n in names if not (out / n / "model.yaml").is_file()]
    if not todo:
        return
    out.mkdir(parents=True, exist_ok=True)
    child = multiprocessing.get_context("spawn").Process(target=_export_child, args=(todo, str(out)))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"exporting the variants failed (exit code {child.exitcode})")


def _top_queries(engine: Engine, decoded: dict, features: Features, geometry: Geometry) -> Detections:
    """The ``INSTANCES`` best queries as detections, whatever their scores (random weights)."""
    scores, class_ids = query_scores(decoded["logits"], decoded["objectness"])
    chosen = np.argsort(-scores)[:INSTANCES]
    logits = mask_logits(decoded["kernels"][chosen], features.mask_features[0])
    mness, cells = mask_stats(logits, geometry, engine.mask_stride, engine.mask_threshold)
    return Detections(decoded["kernels"][chosen], class_ids[chosen], scores[chosen] * mness, scores[chosen],
                      mness, cells, logits, chosen)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / b, 3)


def run(names: list[str], peers: list[tuple[str, Path]], out: Path, rounds: int, frames: int,
        reference: str | None, precision: str = "fp32") -> dict:
    if precision == "fp32":
        export_variants(names, out)  # INT8 graphs come from mobileinst-quantize on copies of these
    video = generate_video(seed=2024, index=0, frames=30, width=RESOLUTION[0], height=RESOLUTION[1]).frames
    runs: dict[tuple[str, str], object] = {}
    dirs = {name: out / name for name in names}
    if reference:
        dirs["trained"] = Path(reference)
    for name, path in dirs.items():
        engine = Engine(path, resolution=RESOLUTION, precision=precision)
        if name != "trained":
            engine.select = functools.partial(_top_queries, engine)
        for label, interval in (("T1", 1), ("T3", 3)):
            runs[(name, label)] = MobileInstRun(engine, video, interval, label)
    for name, path in peers:
        runs[(name, "peer")] = YoloPeerRun(path, video, 1, 10, name)
    keys = list(runs)
    for r in range(1 + rounds):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            runs[key].step(record=False)
            for _ in range(frames):
                runs[key].step(record=r >= 1)
    summary: dict[str, dict] = {}
    for (name, label), run_ in runs.items():
        summary.setdefault(name, {})[label] = run_.series.summary()
    result = {"resolution": f"{RESOLUTION[0]}x{RESOLUTION[1]}", "precision": precision, "rounds": rounds, "frames_per_round": frames,
              "machine": _machine(), "load_average": [round(x, 2) for x in os.getloadavg()],
              "latency_ms": summary, "ratios": {}}
    # CPU-time medians: on a shared core, wall time counts other processes' slices and rare long
    # frames swamp means
    for name in dirs:
        t3 = summary[name]["T3"]
        t3["mean_of_medians"] = round((t3["keyframe_cpu_median"] + 2 * t3["non_keyframe_cpu_median"]) / 3, 2)
    base = summary.get("baseline", {})
    for name in dirs:
        s = summary[name]
        t1, t3 = s["T1"]["cpu_median"], s["T3"]["mean_of_medians"]
        row = {"T1_over_baseline": _ratio(t1, base.get("T1", {}).get("cpu_median")),
               "T3_over_baseline": _ratio(t3, base.get("T3", {}).get("mean_of_medians")),
               "non_keyframe_over_keyframe": _ratio(s["T3"]["non_keyframe_cpu_median"], s["T3"]["keyframe_cpu_median"])}
        for peer, _ in peers:
            row[f"T1_over_{peer}"] = _ratio(t1, summary[peer]["peer"]["cpu_median"])
            row[f"T3_over_{peer}"] = _ratio(t3, summary[peer]["peer"]["cpu_median"])
        result["ratios"][name] = row
    return result


def _table(result: dict, peers: list[str]) -> str:
    head = (f"{'variant':<15}{'T1 ms':>8}{'T3 ms':>8}{'key ms':>8}{'nonkey':>8}{'T1/base':>9}{'T3/base':>9}"
            f"{'non/key':>9}" + "".join(f"{'T1/' + p[:9]:>14}{'T3/' + p[:9]:>14}" for p in peers))
    lines = [head, "-" * len(head)]
    for name, row in result["ratios"].items():
        s = result["latency_ms"][name]
        lines.append(f"{name:<15}{s['T1']['cpu_median']:>8.1f}{s['T3']['mean_of_medians']:>8.1f}"
                     f"{s['T3']['keyframe_cpu_median']:>8.1f}{s['T3']['non_keyframe_cpu_median']:>8.1f}"
                     f"{row['T1_over_baseline'] or 0:>9.3f}"
                     f"{row['T3_over_baseline'] or 0:>9.3f}{row['non_keyframe_over_keyframe'] or 0:>9.3f}"
                     + "".join(f"{row[f'T1_over_{p}']:>14.3f}{row[f'T3_over_{p}']:>14.3f}" for p in peers))
    for p in peers:
        lines.append(f"{p:<15}{result['latency_ms'][p]['peer']['cpu_median']:>8.1f}")
    lines.append("CPU-time medians (ms): T1 = median frame at T=1; T3 = (keyframe + 2 x non-keyframe median) / 3")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobileinst_ros.bench.variants", description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: all")
    parser.add_argument("--peer", action="append", default=[], type=_peer_arg, metavar="NAME=PATH")
    parser.add_argument("--reference", default="models/default", help="trained model also timed ('' to skip)")
    parser.add_argument("--out", type=Path, default=Path("runs/variants"), help="exported variants (reused)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="int8: variants under --out quantized beforehand (mobileinst-quantize on copies)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    names = args.variant or list(VARIANTS)
    if "baseline" not in names:
        names.insert(0, "baseline")
    try:
        result = run(names, args.peer, args.out, args.rounds, args.frames, args.reference or None, args.precision)
    except (ModelLoadError, ValueError, RuntimeError) as err:
        print(f"variants: error: {err}", file=sys.stderr)
        return 1
    print(_table(result, [p for p, _ in args.peer]))
    print(f"load average {result['load_average']}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
