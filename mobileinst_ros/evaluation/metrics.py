"""Figures of one run: YouTube-VIS AP (``vis_ap``), HOTA / CLEAR / Identity (trackeval), latency, drops.

Tracking metrics drive trackeval's metric classes directly: for every (sequence, class) the per-frame
ground-truth and predicted ids with their mask IoUs (pycocotools), combined over everything
(detection-averaged, trackeval's ``COMBINED_SEQ`` / ``cls_comb_det_av``) and averaged over classes.
Only frames with ground truth count for accuracy; a dropped frame (no output) has no predictions.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment
from trackeval.metrics import CLEAR, HOTA, Identity

from mobileinst_ros.evaluation.records import Detection, RunRecord, SequenceRecord

__all__ = ["PHANTOM_IOU", "agreement_metrics", "drop_stats", "latency_stats", "mask_ious", "percentiles",
           "tracking_metrics", "vis_inputs", "vis_metrics"]

_QUIET = {"PRINT_CONFIG": False}


def _metric_classes() -> list:
    return [HOTA(), CLEAR(dict(_QUIET, THRESHOLD=0.5)), Identity(dict(_QUIET, THRESHOLD=0.5))]


def mask_ious(gt: list[Detection], pred: list[Detection]) -> np.ndarray:
    """Mask IoU matrix (len(gt), len(pred))."""
    if not gt or not pred:
        return np.zeros((len(gt), len(pred)))
    ious = mask_utils.iou([d.rle for d in gt], [d.rle for d in pred], [False] * len(pred))
    return np.asarray(ious, dtype=float).reshape(len(gt), len(pred))


def _sequence_data(sequence: SequenceRecord, class_id: int) -> dict | None:
    """trackeval's per-sequence input for one class, or None if the class never appears in it."""
    gt_ids, tr_ids, sims = [], [], []
    for frame in sequence.frames:
        if frame.ground_truth is None:
            continue
        gt = [d for d in frame.ground_truth if d.class_id == class_id]
        pred = [d for d in frame.predictions or [] if d.class_id == class_id]
        gt_ids.append([d.track_id for d in gt])
        tr_ids.append([d.track_id for d in pred])
        sims.append(mask_ious(gt, pred))
    gt_unique = sorted({i for ids in gt_ids for i in ids})
    tr_unique = sorted({i for ids in tr_ids for i in ids})
    if not gt_unique and not tr_unique:
        return None
    gt_map = {v: k for k, v in enumerate(gt_unique)}
    tr_map = {v: k for k, v in enumerate(tr_unique)}
    return {
        "num_timesteps": len(gt_ids),
        "num_gt_ids": len(gt_unique), "num_tracker_ids": len(tr_unique),
        "num_gt_dets": sum(map(len, gt_ids)), "num_tracker_dets": sum(map(len, tr_ids)),
        "gt_ids": [np.array([gt_map[i] for i in ids], dtype=int) for ids in gt_ids],
        "tracker_ids": [np.array([tr_map[i] for i in ids], dtype=int) for ids in tr_ids],
        "similarity_scores": sims,
    }


def _summary(results: dict[str, dict]) -> dict:
    """The headline numbers of trackeval's HOTA / CLEAR / Identity results (HOTA averaged over alpha), and the
    ID switches per 100 ground-truth track-frames (objects in frames: CLEAR's true positives and misses),
    which compares runs over videos of different lengths and crowds where the count does not."""
    hota, clear, identity = results["HOTA"], results["CLEAR"], results["Identity"]
    track_frames = int(clear["CLR_TP"]) + int(clear["CLR_FN"])
    return {
        "HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])),
        "AssA": float(np.mean(hota["AssA"])), "LocA": float(np.mean(hota["LocA"])),
        "IDF1": float(identity["IDF1"]), "IDP": float(identity["IDP"]), "IDR": float(identity["IDR"]),
        "IDSW": int(clear["IDSW"]), "IDSW_per_100": 100 * int(clear["IDSW"]) / max(track_frames, 1),
        "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]),
        "Frag": int(clear["Frag"]), "MT": int(clear["MT"]), "ML": int(clear["ML"]),
    }


def tracking_metrics(run: RunRecord) -> dict:
    """HOTA, DetA, AssA, LocA, IDF1, IDP, IDR, IDSW, IDSW_per_100, MOTA, MOTP, Frag, MT, ML: over everything
    (``overall``), averaged over classes (``class_averaged``) and per class name (``per_class``)."""
    metrics = _metric_classes()
    per_class: dict[int, dict[str, dict]] = defaultdict(dict)  # class -> sequence -> metric -> result
    for s, sequence in enumerate(run.sequences):
        for class_id in range(len(run.class_names)):
            data = _sequence_data(sequence, class_id)
            if data is not None:
                per_class[class_id][f"{s}"] = {m.get_name(): m.eval_sequence(data) for m in metrics}
    if not per_class:
        raise ValueError("no ground truth and no predictions in any frame with ground truth: nothing to score")
    everything = {f"{c}/{s}": res for c, seqs in per_class.items() for s, res in seqs.items()}
    class_results = {c: {m.get_name(): m.combine_sequences({k: r[m.get_name()] for k, r in seqs.items()})
                         for m in metrics} for c, seqs in per_class.items()}
    overall = {m.get_name(): m.combine_sequences({k: r[m.get_name()] for k, r in everything.items()})
               for m in metrics}
    averaged = {m.get_name(): m.combine_classes_class_averaged(
        {c: r[m.get_name()] for c, r in class_results.items()}, ignore_empty_classes=True) for m in metrics}
    return {
        "overall": _summary(overall),
        "class_averaged": _summary(averaged),
        "per_class": {run.class_names[c]: _summary(r) for c, r in sorted(class_results.items())},
    }


# A prediction whose mask overlaps every ground-truth object (of any class) by less than this IoU in its
# frame is a phantom: it points at nothing the labels know. Loose on purpose: a poor mask of a real
# object is an accuracy problem, not a phantom.
PHANTOM_IOU = 0.3


def agreement_metrics(run: RunRecord, match_iou: float = 0.5) -> dict:
    """Figures that read a prediction against labels that are themselves imperfect (e.g. a teacher's):

    - ``phantoms_per_frame``: predictions per frame with mask IoU below ``PHANTOM_IOU`` to every
      ground-truth object in the frame, whatever its class;
    - ``ids_per_gt_track``: over the ground-truth tracks matched at least once, the mean number of
      distinct predicted track ids matched to one (1.0 = never re-identified; class-agnostic, per frame
      Hungarian matching on mask IoU >= ``match_iou``), overall and ``per_class`` by ground-truth class;
    - ``gt_tracks_matched``: how many ground-truth tracks that mean covers, of ``gt_tracks``.
    Only frames with ground truth count, as for the other accuracy figures.
    """
    phantoms, frames = 0, 0
    ids: dict[tuple[int, int], set[int]] = defaultdict(set)   # (sequence, gt track) -> predicted ids
    gt_class: dict[tuple[int, int], int] = {}
    for s, sequence in enumerate(run.sequences):
        for frame in sequence.frames:
            if frame.ground_truth is None:
                continue
            frames += 1
            gt, pred = frame.ground_truth, frame.predictions or []
            for d in gt:
                gt_class[(s, d.track_id)] = d.class_id
            ious = mask_ious(gt, pred)
            phantoms += int((ious.max(axis=0, initial=0.0) < PHANTOM_IOU).sum()) if pred else 0
            rows, cols = linear_sum_assignment(-ious) if ious.size else ((), ())
            for r, c in zip(rows, cols):
                if ious[r, c] >= match_iou:
                    ids[(s, gt[r].track_id)].add(pred[c].track_id)
    by_class: dict[str, list[int]] = defaultdict(list)
    for key, matched in ids.items():
        by_class[run.class_names[gt_class[key]]].append(len(matched))
    every = [n for counts in by_class.values() for n in counts]
    return {
        "frames": frames,
        "phantoms_per_frame": phantoms / frames if frames else 0.0,
        "ids_per_gt_track": float(np.mean(every)) if every else None,
        "per_class": {name: float(np.mean(counts)) for name, counts in sorted(by_class.items())},
        "gt_tracks": len(gt_class), "gt_tracks_matched": len(every),
    }


def _rle_json(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _track_class(dets: list[Detection]) -> int:
    """A predicted track's class: the one with the highest summed score over its frames."""
    votes: dict[int, float] = defaultdict(float)
    for d in dets:
        votes[d.class_id] += d.score
    return max(votes, key=lambda c: (votes[c], -c))


def vis_inputs(run: RunRecord) -> tuple[dict, list[dict]]:
    """The run as a YouTube-VIS ground-truth dict and result list (category id = class index + 1).

    Each sequence is a video of its frames with ground truth; each predicted track is one result with
    its score-weighted class and mean score; a frame where it is absent (or dropped) is null.
    """
    videos, annotations, results = [], [], []
    for s, sequence in enumerate(run.sequences):
        frames = [f for f in sequence.frames if f.ground_truth is not None]
        if not frames:
            continue
        video_id = s + 1
        videos.append({"id": video_id, "name": sequence.name, "height": sequence.height,
                       "width": sequence.width, "length": len(frames),
                       # vis_ap takes the video length from file_names, as in annotations.json
                       "file_names": [f"{sequence.name}/{t:05d}" for t in range(len(frames))]})
        for track_id, per_frame in _tracks(frames, ground_truth=True).items():
            dets = [d for d in per_frame if d is not None]
            annotations.append({
                "id": len(annotations) + 1, "video_id": video_id, "category_id": dets[0].class_id + 1,
                "iscrowd": 0, "segmentations": [_rle_json(d.rle) if d else None for d in per_frame],
                "areas": [float(mask_utils.area(d.rle)) if d else None for d in per_frame],
                "bboxes": [[float(v) for v in mask_utils.toBbox(d.rle)] if d else None for d in per_frame],
            })
        for track_id, per_frame in _tracks(frames, ground_truth=False).items():
            dets = [d for d in per_frame if d is not None]
            results.append({"video_id": video_id, "category_id": _track_class(dets) + 1,
                            "score": float(np.mean([d.score for d in dets])),
                            "segmentations": [_rle_json(d.rle) if d else None for d in per_frame]})
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(run.class_names)]
    return {"videos": videos, "annotations": annotations, "categories": categories}, results


def _tracks(frames: list, ground_truth: bool) -> dict[int, list[Detection | None]]:
    tracks: dict[int, list[Detection | None]] = {}
    for t, frame in enumerate(frames):
        dets = frame.ground_truth if ground_truth else frame.predictions
        for d in dets or []:
            tracks.setdefault(d.track_id, [None] * len(frames))[t] = d
    return tracks


def vis_metrics(run: RunRecord) -> dict:
    """YouTube-VIS AP, AP50, AP75, AR1, AR10 and per-class AP (``evaluation.vis_ap``)."""
    from mobileinst_ros.evaluation.vis_ap import youtube_vis_ap

    gt, predictions = vis_inputs(run)
    return youtube_vis_ap(gt, predictions)


def percentiles(values: list[float]) -> dict:
    """p50 / p95 / p99 / mean / max / count of a list of milliseconds (empty: count 0 only)."""
    if not values:
        return {"count": 0}
    a = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(a.mean()),
            "max": float(a.max()), "count": int(a.size)}


def latency_stats(run: RunRecord) -> dict:
    """Latency percentiles: per frame (``total``), keyframes and the others, each stage, end to end."""
    frames = [f for f in run.frames() if f.latency_ms is not None]
    stages: dict[str, list[float]] = defaultdict(list)
    for f in frames:
        for stage, ms in f.timings_ms.items():
            stages[stage].append(ms)
    return {
        "total": percentiles([f.latency_ms for f in frames]),
        "keyframe": percentiles([f.latency_ms for f in frames if f.is_keyframe]),
        "non_keyframe": percentiles([f.latency_ms for f in frames if f.is_keyframe is False]),
        "stages": {stage: percentiles(v) for stage, v in sorted(stages.items())},
        "end_to_end": percentiles([f.end_to_end_ms for f in run.frames() if f.end_to_end_ms is not None]),
    }


def drop_stats(run: RunRecord) -> dict:
    """Input frames, frames with no output, and their ratio."""
    frames = run.frames()
    dropped = sum(f.predictions is None for f in frames)
    return {"frames": len(frames), "dropped": dropped, "drop_rate": dropped / len(frames) if frames else 0.0}
