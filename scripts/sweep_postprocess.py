"""Sweep the engine's duplicate suppression (mask NMS) for one model on one input, at several keyframe
intervals, in one process: AP, AP50, MOTA, HOTA, ID switches, phantoms per frame, track ids per true track.

    .venv/bin/python scripts/sweep_postprocess.py MODEL INPUT [--duplicate-iou 1,0.7,0.5,0.3] [-T 1,3]

INPUT is what ``mobileinst-eval run --input`` takes (a bag with ground truth or a YouTube-VIS dataset).
One JSON line per run on stdout.
"""
from __future__ import annotations

import argparse
import json

from mobileinst_ros.data.bags import GT_TOPIC, IMAGE_TOPIC
from mobileinst_ros.evaluation import metrics
from mobileinst_ros.evaluation.offline import run_offline
from mobileinst_ros.evaluation.sources import open_source
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.tracking.tracker import KernelTracker


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("--duplicate-iou", type=_floats, default=[1.0, 0.7, 0.5, 0.3])
    parser.add_argument("-T", type=lambda t: [int(x) for x in t.split(",")], default=[1, 3])
    args = parser.parse_args()
    engine = Engine(args.model, threads=1)
    source = open_source(args.input, engine.class_names, IMAGE_TOPIC, GT_TOPIC, gt_required=True)
    for interval in args.T:
        for iou in args.duplicate_iou:
            engine.duplicate_iou = iou
            run = run_offline(source, KernelTracker(engine, keyframe_interval=interval), {}, progress=False)
            accuracy = metrics.vis_metrics(run)
            tracking = metrics.tracking_metrics(run)["overall"]
            agreement = metrics.agreement_metrics(run)
            print(json.dumps({
                "T": interval, "duplicate_iou": iou, "AP": round(100 * accuracy["AP"], 1),
                "AP50": round(100 * accuracy["AP50"], 1),
                "per_class_AP50": {k: round(100 * v, 1) for k, v in accuracy["per_class_AP50"].items()},
                "MOTA": round(100 * tracking["MOTA"], 1), "HOTA": round(100 * tracking["HOTA"], 1),
                "IDSW": tracking["IDSW"], "phantoms_per_frame": round(agreement["phantoms_per_frame"], 3),
                "ids_per_true_track": agreement["ids_per_gt_track"], "ids_per_true_track_by_class": agreement["per_class"],
            }), flush=True)


if __name__ == "__main__":
    main()
