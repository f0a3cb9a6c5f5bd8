"""Sweep the engine's post-processing (score threshold, duplicate suppression by mask NMS) and the
tracker's association threshold for one model on one input, at several keyframe intervals, in one process:
AP, AP50, MOTA, HOTA, ID switches (also per 100 true track-frames), phantoms per frame, track ids per true track,
and per class the frame AP50 (every frame an image: detection and masks without tracking, which whole-track AP on
long clips hides).

    .venv/bin/python scripts/sweep_postprocess.py MODEL INPUT [--duplicate-iou 1,0.7,0.5,0.3]
        [--score-threshold 0.3] [-T 1,3] [--split-components 0,1] [--resolution WxH]
        [--association-threshold 0.5] [--non-keyframe-scale 1,0.75] [--non-keyframe-crops 1,0]
        [--mask-threshold 0.5] [--max-instances 10] [--max-videos N]

INPUT is what ``mobileinst-eval run --input`` takes (a bag with ground truth or a YouTube-VIS dataset).
One JSON line per run on stdout.
"""
from __future__ import annotations

import argparse
import itertools
import json

from mobileinst_ros.data.bags import GT_TOPIC, IMAGE_TOPIC
from mobileinst_ros.evaluation import metrics
from mobileinst_ros.evaluation.offline import run_offline
from mobileinst_ros.evaluation.records import RunRecord
from mobileinst_ros.evaluation.sources import open_source
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.tracking.tracker import ASSOCIATION_THRESHOLD, KernelTracker
from mobileinst_ros.training.validation import frame_mask_stats, validation_source


ENGINE_SETTINGS = ("score_threshold", "duplicate_iou", "split_components", "mask_threshold", "max_instances")
TRACKER_SETTINGS = ("keyframe_interval", "association_threshold", "non_keyframe_scale", "non_keyframe_crops")


def _pct(value: float) -> float:
    return round(100 * value, 1)


def frame_ap50(run: RunRecord, class_id: int) -> float | None:
    """Mask AP50 of one class with every annotated frame an image (detection, no tracking)."""
    stats = frame_mask_stats(run, class_id)
    return None if stats is None else _pct(stats[1])


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("--duplicate-iou", type=_floats, default=[1.0, 0.7, 0.5, 0.3])
    parser.add_argument("--score-threshold", type=_floats, default=None, help="default: the model's")
    parser.add_argument("--resolution", help="model input WxH (default: the engine's choice per image)")
    parser.add_argument("-T", type=lambda t: [int(x) for x in t.split(",")], default=[1, 3])
    parser.add_argument("--split-components", type=lambda t: [bool(int(x)) for x in t.split(",")], default=None,
                        help="0 and/or 1 (default: the model's)")
    parser.add_argument("--association-threshold", type=_floats, default=[ASSOCIATION_THRESHOLD],
                        help="the tracker's keyframe matching threshold (mobileinst_node's association_threshold)")
    parser.add_argument("--mask-threshold", type=_floats, default=None, help="default: the model's")
    parser.add_argument("--max-instances", type=lambda t: [int(x) for x in t.split(",")], default=None,
                        help="default: the model's")
    parser.add_argument("--non-keyframe-scale", type=_floats, default=[1.0],
                        help="the tracker's non_keyframe_scale (shallow backbone of non-keyframes on a smaller image)")
    parser.add_argument("--non-keyframe-crops", type=lambda t: [bool(int(x)) for x in t.split(",")], default=[True],
                        help="0 and/or 1: the tracker's non_keyframe_crops (shallow backbone of non-keyframes only "
                             "around the instances they follow)")
    parser.add_argument("--max-videos", type=int, default=None,
                        help="a dataset's first N annotated videos only (e.g. a training set's, to compare a model "
                             "on videos it trained on with unseen ones)")
    args = parser.parse_args()
    engine = Engine(args.model, threads=1, resolution=args.resolution)
    source = open_source(args.input, engine.class_names, IMAGE_TOPIC, GT_TOPIC, gt_required=True)
    if args.max_videos is not None:
        if source.dataset is None:
            parser.error("--max-videos needs a YouTube-VIS dataset, not a bag")
        source = validation_source(source.dataset, args.max_videos)
    grid = {"keyframe_interval": args.T,
            "score_threshold": args.score_threshold or [engine.score_threshold],
            "duplicate_iou": args.duplicate_iou,
            "split_components": args.split_components or [engine.split_components],
            "association_threshold": args.association_threshold,
            "non_keyframe_scale": args.non_keyframe_scale,
            "non_keyframe_crops": args.non_keyframe_crops,
            "mask_threshold": args.mask_threshold or [engine.mask_threshold],
            "max_instances": args.max_instances or [engine.max_instances]}
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        for name in ENGINE_SETTINGS:
            setattr(engine, name, setting[name])
        tracker = KernelTracker(engine, **{name: setting[name] for name in TRACKER_SETTINGS})
        run = run_offline(source, tracker, {}, progress=False)
        accuracy = metrics.vis_metrics(run)
        tracking = metrics.tracking_metrics(run)["overall"]
        agreement = metrics.agreement_metrics(run)
        interval = setting.pop("keyframe_interval")
        print(json.dumps({
            "T": interval, **setting,
            "AP": _pct(accuracy["AP"]),
            "AP50": _pct(accuracy["AP50"]),
            "per_class_AP50": {k: _pct(v) for k, v in accuracy["per_class_AP50"].items()},
            "per_class_frame_AP50": {name: frame_ap50(run, c) for c, name in enumerate(engine.class_names)},
            "MOTA": _pct(tracking["MOTA"]), "HOTA": _pct(tracking["HOTA"]), "IDSW": tracking["IDSW"],
            "IDSW_per_100": round(tracking["IDSW_per_100"], 2),
            "phantoms_per_frame": round(agreement["phantoms_per_frame"], 3),
            "ids_per_true_track": agreement["ids_per_gt_track"], "ids_per_true_track_by_class": agreement["per_class"],
        }), flush=True)


if __name__ == "__main__":
    main()
