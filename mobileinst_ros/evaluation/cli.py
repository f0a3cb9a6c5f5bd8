"""``mobileinst-eval``: evaluate a model on a rosbag2 or a YouTube-VIS dataset; score and compare runs.

    mobileinst-eval [run] --model models/default --input BAG_OR_DATASET --out runs/eval [--mode offline|live]
                    [--keyframe-interval 3 | --keyframe-intervals 1,2,3] [--precision int8] ...
    mobileinst-eval score --input RESULTS_BAG --out DIR       # metrics of a recorded run, no model needed
    mobileinst-eval compare A B --out DIR                     # two result directories or results bags

A run writes to ``--out``: metrics.json (every figure), report.md (+ plots, overlay.mp4) and
predictions_bag/ (the predicted InstanceArray topic with the ground truth, see results_bag.py).
With several keyframe intervals each goes to ``--out/T<t>/`` and sweep.md plots AP and latency against T.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobileinst_ros.data.bags import GT_TOPIC, IMAGE_TOPIC, BagError
from mobileinst_ros.data.ytvis import DatasetError
from mobileinst_ros.evaluation.sources import InputError

__all__ = ["main"]

RESULTS_BAG = "predictions_bag"
_COMMANDS = ("run", "score", "compare")


def _intervals(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,3, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"keyframe intervals must be >= 1, got {text!r}")
    return sorted(set(values))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobileinst-eval", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a model on a bag or dataset (the default command)")
    run.add_argument("--model", type=Path, default=Path("models/default"), help="exported model directory")
    run.add_argument("--input", type=Path, required=True, help="rosbag2 (dir, .db3 or .mcap) or YouTube-VIS dataset")
    run.add_argument("--out", type=Path, required=True, help="new result directory")
    run.add_argument("--mode", choices=("offline", "live"), default="offline",
                     help="offline: every frame in turn; live: the bag played at its rate through the node")
    run.add_argument("--keyframe-interval", "-T", type=int, help="T (default: the tracker's)")
    run.add_argument("--keyframe-intervals", type=_intervals, help="a sweep, e.g. 1,2,3 (overrides -T)")
    run.add_argument("--non-keyframe-scale", type=float, default=1.0,
                     help="offline: non-keyframes' shallow backbone on the image shrunk by this factor")
    run.add_argument("--whole-non-keyframes", action="store_true",
                     help="offline: non-keyframes' shallow backbone on the whole image, not only around the "
                          "instances they follow (the tracker's non_keyframe_crops off)")
    run.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    run.add_argument("--resolution", help="model resolution WxH among the exported ones")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--image-topic", default=IMAGE_TOPIC)
    run.add_argument("--gt-topic", default=GT_TOPIC, help="ground-truth InstanceArray topic (used if present)")
    run.add_argument("--no-gt", action="store_true", help="ignore ground truth: latency and drops only")
    run.add_argument("--fps", type=float, default=10.0, help="frame rate given to dataset videos")
    run.add_argument("--max-frames", type=int, help="stop after this many frames (offline)")
    run.add_argument("--video-frames", type=int, default=300, help="frames in overlay.mp4 (0: no video)")
    run.add_argument("--bag-storage", choices=("sqlite3", "mcap"), default="sqlite3")
    run.add_argument("--rate", type=float, default=1.0, help="live: playback speed factor")
    run.add_argument("--domain-id", type=int, help="live: ROS_DOMAIN_ID of the run's graph (default: random 1-100)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    score = sub.add_parser("score", help="metrics and report of a results bag or a recording of the node")
    score.add_argument("--input", type=Path, required=True)
    score.add_argument("--out", type=Path, required=True)
    score.add_argument("--predictions-topic", default="/mobileinst/instances")
    score.add_argument("--model-info-topic", default="/mobileinst/model_info")
    score.add_argument("--gt-topic", default=GT_TOPIC)
    comp = sub.add_parser("compare", help="two runs side by side")
    comp.add_argument("a", type=Path, help="result directory or results bag")
    comp.add_argument("b", type=Path, help="result directory or results bag")
    comp.add_argument("--out", type=Path, help="where compare.md goes (default: <a>_vs_<b> next to A)")
    return parser


def _check_run_args(args: argparse.Namespace) -> None:
    if (args.keyframe_interval is not None and args.keyframe_interval < 1) or args.threads < 1 or args.fps <= 0 or args.rate <= 0:
        raise InputError("--keyframe-interval and --threads must be >= 1, --fps and --rate positive")
    if not 0 < args.non_keyframe_scale <= 1 or (args.non_keyframe_scale != 1 and args.mode == "live"):
        raise InputError(f"--non-keyframe-scale must be in (0, 1] and is for offline mode (got "
                         f"{args.non_keyframe_scale}, {args.mode}; live runs take the node's parameter)")
    if args.whole_non_keyframes and args.mode == "live":
        raise InputError("--whole-non-keyframes is for offline mode; live runs take the node's non_keyframe_crops")
    if args.max_frames is not None and (args.max_frames < 1 or args.mode == "live"):
        raise InputError(f"--max-frames must be >= 1 and is for offline mode (got {args.max_frames}, {args.mode})")
    if (args.out / RESULTS_BAG).exists() or (args.out / "metrics.json").exists():
        raise InputError(f"{args.out} already holds results; choose a new --out")
    if args.mode == "live" and (args.input / "annotations.json").is_file():
        raise InputError(f"{args.input}: live mode plays a bag; make one with mobileinst-synth --bag or "
                         "evaluate the dataset offline")


def _engine_and_source(args: argparse.Namespace):  # noqa: ANN202  (Engine import stays lazy)
    from mobileinst_ros.evaluation.sources import open_source
    from mobileinst_ros.runtime.engine import Engine

    engine = Engine(args.model, threads=args.threads, resolution=args.resolution, precision=args.precision)
    source = open_source(args.input, engine.class_names, args.image_topic, None if args.no_gt else args.gt_topic,
                         fps=args.fps)
    return engine, source


def _run_one(args: argparse.Namespace, engine, source, interval: int, out: Path) -> dict:  # noqa: ANN001
    from mobileinst_ros.evaluation.report import write_report
    from mobileinst_ros.evaluation.results_bag import write_results_bag

    info = {"model": str(args.model), "precision": args.precision, "keyframe_interval": interval,
            "non_keyframe_scale": args.non_keyframe_scale, "non_keyframe_crops": not args.whole_non_keyframes,
            "input": str(args.input), "threads": args.threads}
    if args.mode == "offline":
        from mobileinst_ros.evaluation.offline import run_offline
        from mobileinst_ros.tracking.tracker import KernelTracker

        tracker = KernelTracker(engine, keyframe_interval=interval, non_keyframe_scale=args.non_keyframe_scale,
                                non_keyframe_crops=not args.whole_non_keyframes)
        run = run_offline(source, tracker, info, progress=not args.quiet, max_frames=args.max_frames)
    else:
        from mobileinst_ros.evaluation.live import run_live

        run = run_live(source, args.model, info, out, precision=args.precision, threads=args.threads,
                       rate=args.rate, resolution=args.resolution, domain_id=args.domain_id,
                       progress=not args.quiet)
    if run.sequences:  # the model input the engine picks for these images (height, width)
        first = run.sequences[0]
        run.info["input_size"] = list(engine.pick_resolution((first.width, first.height))[::-1])
    out.mkdir(parents=True, exist_ok=True)
    write_results_bag(run, out / RESULTS_BAG, args.bag_storage)
    summary = write_report(out, run, source, video_frames=args.video_frames, fps=source.fps)
    _print_headline(out, summary)
    return summary


def _print_headline(out: Path, summary: dict) -> None:
    lat, drops = summary["latency"]["total"], summary["drops"]
    text = f"{out}: {drops['frames']} frames, {drops['dropped']} dropped"
    if lat.get("count"):
        text += f", latency p50 {lat['p50']:.1f} / p95 {lat['p95']:.1f} / p99 {lat['p99']:.1f} ms"
    if "accuracy" in summary:
        acc, trk = summary["accuracy"], summary["tracking"]["overall"]
        text += f", AP {100 * acc['AP']:.1f}, HOTA {100 * trk['HOTA']:.1f}, IDF1 {100 * trk['IDF1']:.1f}"
        text += f", {summary['agreement']['phantoms_per_frame']:.2f} phantoms per frame"
    print(text)


def _cmd_run(args: argparse.Namespace) -> int:
    from mobileinst_ros.evaluation.report import write_sweep_report

    _check_run_args(args)
    engine, source = _engine_and_source(args)
    if not args.keyframe_intervals:
        from mobileinst_ros.tracking.tracker import KernelTracker

        interval = args.keyframe_interval or KernelTracker(engine).keyframe_interval
        _run_one(args, engine, source, interval, args.out)
        return 0
    results = [(t, _run_one(args, engine, source, t, args.out / f"T{t}")) for t in args.keyframe_intervals]
    write_sweep_report(args.out, results)
    print(f"sweep: {args.out / 'sweep.md'}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from mobileinst_ros.evaluation.report import write_report
    from mobileinst_ros.evaluation.results_bag import read_results_bag

    if (args.out / "metrics.json").exists():
        raise InputError(f"{args.out} already holds results; choose a new --out")
    run = read_results_bag(args.input, args.predictions_topic, args.model_info_topic, args.gt_topic)
    run.info.setdefault("input", str(args.input))
    _print_headline(args.out, write_report(args.out, run))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mobileinst_ros.evaluation.compare import compare

    out = args.out or args.a.parent / f"{args.a.name}_vs_{args.b.name}"
    compare(args.a, args.b, out)
    print(f"comparison: {out / 'compare.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in _COMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]  # `run` is the default command
    args = _parser().parse_args(argv)
    from mobileinst_ros.runtime.model_dir import ModelLoadError

    commands = {"run": _cmd_run, "score": _cmd_score, "compare": _cmd_compare}
    try:
        return commands[args.command](args)
    except (InputError, BagError, DatasetError, ModelLoadError, OSError, ValueError, RuntimeError) as error:
        print(f"mobileinst-eval: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mobileinst-eval: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
