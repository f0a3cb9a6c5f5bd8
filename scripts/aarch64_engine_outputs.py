#!/usr/bin/env python3
"""Engine outputs on fixed synthetic frames (``run``) and their comparison across machines (``compare``).

Run by ``scripts/check_aarch64.sh`` on x86 and, under qemu, on aarch64. The x86 run renders frames of
the synthetic videos and stores them with its outputs; the aarch64 run reads them from there, so it
needs only numpy, OpenCV, onnxruntime, PyYAML, threadpoolctl and ``mobileinst_ros`` (runtime/, masks.py).

    aarch64_engine_outputs.py run --model DIR --out x86.npz [--resolution 320x320] [--precision fp32]
    aarch64_engine_outputs.py run --model DIR --out arm.npz --frames-from x86.npz
    aarch64_engine_outputs.py compare x86.npz arm.npz [--rtol 1e-3] [--min-iou 0.98] [--allow-different-instances]
"""
from __future__ import annotations

import argparse
import platform
import sys

import numpy as np


def synthetic_frames(resolution: tuple[int, int], count: int) -> list[np.ndarray]:
    """Frames of the project's synthetic videos (objects the default model was trained on)."""
    from mobileinst_ros.data.synth import generate_video

    return generate_video(seed=99, index=0, frames=count, width=resolution[0], height=resolution[1]).frames


def run(model: str, out: str, resolution: tuple[int, int], precision: str, count: int,
        frames_from: str | None) -> None:
    from mobileinst_ros.runtime.engine import Engine

    engine = Engine(model, threads=1, resolution=resolution, precision=precision)
    if frames_from:  # the aarch64 side has no data generator: it takes the x86 run's frames
        given = np.load(frames_from)
        images = [given[f"input/{i}"] for i in range(count)]
    else:
        images = synthetic_frames(resolution, count)
    arrays = {f"input/{i}": image for i, image in enumerate(images)}
    keyframe = None
    for i, image in enumerate(images):
        prepared = engine.prepare(image)
        if keyframe is not None:  # this frame as a non-keyframe of the previous one: mask_decoder_reuse
            arrays[f"{i}/reused_mask_features"] = engine.reuse_features(prepared, keyframe).mask_features
        features = keyframe = engine.keyframe_features(prepared)
        decoded = engine.decode(features)
        for name in ("x3", "x4", "x5", "x6", "mask_features"):
            arrays[f"{i}/{name}"] = getattr(features, name)
        for name, value in decoded.items():
            arrays[f"{i}/{name}"] = value
        det = engine.select(decoded, features, prepared.geometry)
        arrays[f"{i}/query_indices"] = det.query_indices
        arrays[f"{i}/masks"] = engine.to_image(det.mask_logits, prepared.geometry)[0]
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}: {len(arrays)} arrays on {platform.machine()}")


def _iou(m: np.ndarray, n: np.ndarray) -> float:
    union = (m | n).sum()
    return float((m & n).sum() / union) if union else 1.0  # two empty masks agree


def compare(a_path: str, b_path: str, rtol: float, min_iou: float, allow_different: bool) -> int:
    a, b = np.load(a_path), np.load(b_path)
    if set(a.files) != set(b.files):
        print(f"different arrays: {sorted(set(a.files) ^ set(b.files))}")
        return 1
    failures = 0
    for name in sorted(a.files):
        x, y = a[name], b[name]
        if name.endswith("/masks") or name.endswith("/query_indices") or name.startswith("input/"):
            continue
        err = float(np.abs(x - y).max()) if x.size else 0.0
        tol = rtol * max(1.0, float(np.abs(x).max()) if x.size else 1.0)
        ok = x.shape == y.shape and err <= tol
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name:<24} max abs diff {err:.2e} (tolerance {tol:.2e})")
    for name in sorted(n for n in a.files if n.endswith("/masks")):
        frame = name.split("/")[0]
        qa, qb = list(a[f"{frame}/query_indices"]), list(b[f"{frame}/query_indices"])
        common = [q for q in qa if q in qb]
        ious = [_iou(a[name][qa.index(q)], b[name][qb.index(q)]) for q in common]
        same = qa == qb
        ok = (same or allow_different) and all(v >= min_iou for v in ious)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name:<24} instances {len(qa)} vs {len(qb)}, same: {same}, "
              f"min mask IoU over the {len(common)} common: {min(ious, default=1.0):.4f}")
    print("aarch64 matches x86" if failures == 0 else f"{failures} mismatch(es)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--resolution", default="320x320")
    r.add_argument("--precision", default="fp32")
    r.add_argument("--frames", type=int, default=2)
    r.add_argument("--frames-from", help="an earlier run's .npz whose input frames to use")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--rtol", type=float, default=1e-3)
    c.add_argument("--min-iou", type=float, default=0.98)
    c.add_argument("--allow-different-instances", action="store_true",
                   help="INT8: rounding differs by a unit in the last place between CPUs, near-tied "
                        "scores may then swap instances in or out")
    args = parser.parse_args(argv)
    if args.command == "run":
        w, h = (int(v) for v in args.resolution.split("x"))
        run(args.model, args.out, (w, h), args.precision, args.frames, args.frames_from)
        return 0
    return compare(args.a, args.b, args.rtol, args.min_iou, args.allow_different_instances)


if __name__ == "__main__":
    sys.exit(main())
