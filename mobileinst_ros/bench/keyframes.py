"""Keyframe policies side by side: fixed T against adaptive keyframes, accuracy, ID switches and latency.

    python -m mobileinst_ros.bench.keyframes --model models/shapes --input data_cache/synth_val \\
        [--policy 1 --policy 3 --policy 3a --policy 6a ...] [--precision fp32] [--json PATH]

A policy is ``T`` (a keyframe every T frames) or ``Ta`` (every T frames at the latest, earlier when
the adaptive checks of ``KernelTracker`` fire); a ``k`` suffix (``3k``, ``3ak``) selects the paper's
reuse (``reuse_mode="kernels"``: non-keyframes rerun the whole backbone, skip only the instance decoder)
instead of today's reuse of the keyframe's deep features. Each runs offline over the whole annotated dataset
(``evaluation.offline``) and is scored with the project's YouTube-VIS AP and trackeval (IDSW: identity
switches). Latency comes from the same run, so with a loaded machine compare the keyframe fraction.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobileinst_ros.bench import write_json
from mobileinst_ros.evaluation.offline import run_offline
from mobileinst_ros.evaluation.report import summarize
from mobileinst_ros.evaluation.sources import open_source
from mobileinst_ros.runtime.engine import Engine, ModelLoadError
from mobileinst_ros.tracking.tracker import KernelTracker

__all__ = ["parse_policy", "evaluate_policy", "main"]

DEFAULT_POLICIES = ("1", "3", "3a", "6", "6a")


def parse_policy(text: str) -> tuple[int, bool, str]:
    """'3' -> (3, False, 'features'); '6a' -> (6, True, 'features'); '3k' -> (3, False, 'kernels')."""
    reuse = "kernels" if text.endswith("k") else "features"
    rest = text[:-1] if reuse == "kernels" else text
    adaptive = rest.endswith("a")
    try:
        interval = int(rest[:-1] if adaptive else rest)
    except ValueError:
        raise ValueError(f"policy must look like 3, 3a, 3k or 3ak, got {text!r}") from None
    if interval < 1:
        raise ValueError(f"policy interval must be >= 1, got {text!r}")
    return interval, adaptive, reuse


def evaluate_policy(engine: Engine, dataset: Path, policy: str, max_frames: int | None = None) -> dict:
    """One offline run of ``policy`` over ``dataset``: AP, tracking and latency figures."""
    interval, adaptive, reuse = parse_policy(policy)
    tracker = KernelTracker(engine, keyframe_interval=interval, adaptive_keyframes=adaptive, reuse_mode=reuse)
    source = open_source(dataset, engine.class_names)
    run = run_offline(source, tracker, {"policy": policy}, progress=False, max_frames=max_frames)
    summary = summarize(run)
    frames = summary["per_frame"]
    keyframes = [f["is_keyframe"] for f in frames if f["is_keyframe"] is not None]
    row = {"policy": policy, "frames": len(frames),
           "keyframe_fraction": round(sum(keyframes) / max(len(keyframes), 1), 3),
           "latency_mean_ms": round(summary["latency"]["total"].get("mean", float("nan")), 2)}
    if "accuracy" in summary:
        acc, trk = summary["accuracy"], summary["tracking"]["overall"]
        row.update({k: round(acc[k], 4) for k in ("AP", "AP50", "AP75")})
        row.update({k: round(trk[k], 4) if isinstance(trk[k], float) else trk[k]
                    for k in ("HOTA", "AssA", "IDF1", "IDSW", "Frag")})
    return row


def _table(rows: list[dict]) -> str:
    keys = ["policy", "keyframe_fraction", "latency_mean_ms", "AP", "AP50", "HOTA", "AssA", "IDF1", "IDSW", "Frag"]
    lines = [" ".join(f"{k:>17}" for k in keys)]
    lines += [" ".join(f"{row.get(k, '-')!s:>17}" for k in keys) for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobileinst_ros.bench.keyframes", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/shapes")
    parser.add_argument("--input", required=True, type=Path, help="annotated YouTube-VIS dataset")
    parser.add_argument("--policy", action="append", help=f"T, Ta, Tk or Tak, repeatable (default {' '.join(DEFAULT_POLICIES)})")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--resolution", help="model resolution WxH (default: closest to the video's aspect)")
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        policies = args.policy or list(DEFAULT_POLICIES)
        for policy in policies:
            parse_policy(policy)
        engine = Engine(args.model, resolution=args.resolution, precision=args.precision)
        rows = [evaluate_policy(engine, args.input, p, args.max_frames) for p in policies]
    except (ModelLoadError, ValueError) as err:
        print(f"keyframes: error: {err}", file=sys.stderr)
        return 1
    print(_table(rows))
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
