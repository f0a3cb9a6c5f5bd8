"""Validation during training: the robot's engine, tracker and ``mobileinst-eval``'s metrics on a torch model.

``validate`` runs ``evaluation.offline.run_offline`` with a ``tracking.KernelTracker`` on a
``TorchEngine`` over the validation videos and scores the run with ``evaluation.metrics``: its AP is
the AP ``mobileinst-eval`` reports for the exported model on the same videos at the same resolution,
keyframe interval and thresholds. Beside it, figures that say *why* AP is what it is:

- ``frame_AP``: COCO mask AP of every frame as an image (detection and masks, no tracking);
- ``agnostic_AP``: the track AP with every class merged into one (classification errors removed);
- ``duplicates``: share of predicted instances overlapping (mask IoU > 0.5) a better-scored one of
  the same frame;
- ``MOTA``, ``HOTA``, ``IDSW`` (ID switches; ``IDSW_per_100`` per 100 ground-truth track-frames) from trackeval,
  as ``mobileinst-eval`` reports them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..data.ytvis import VideoDataset
from ..evaluation import metrics
from ..evaluation.offline import run_offline
from ..evaluation.records import RunRecord
from ..evaluation.sources import Source
from ..evaluation.vis_ap import coco_segm_eval, youtube_vis_ap
from ..model.mobileinst import MobileInst
from ..tracking.tracker import KernelTracker
from .torch_engine import TorchEngine

__all__ = ["validation_source", "validate", "frame_mask_stats", "frame_ap", "agnostic_ap", "duplicate_rate"]


def validation_source(dataset: VideoDataset, max_videos: int | None = None, fps: float = 10.0) -> Source:
    """The first ``max_videos`` annotated videos of a loaded dataset as an evaluation ``Source``
    (what ``mobileinst-eval --input <dataset>`` reads, without loading it again)."""
    videos = [v for v in dataset.videos if v.instances][:max_videos]
    subset = VideoDataset(dataset.source, videos, dataset.classes, dataset.category_ids)
    return Source(dataset.source, "dataset", list(dataset.classes), subset.num_frames, True, fps=fps,
                  dataset=subset)


def frame_mask_stats(run: RunRecord, class_id: int | None = None) -> np.ndarray | None:
    """COCOeval's 12 mask statistics (AP, AP50, ...) with every annotated frame as an image: detection and
    masks without tracking. Every class, or only ``class_id``; None without ground truth."""
    images, gts, dts = [], [], []
    for sequence in run.sequences:
        for frame in sequence.frames:
            if frame.ground_truth is None:
                continue
            images.append({"id": len(images) + 1, "height": sequence.height, "width": sequence.width})
            for target, detections in ((gts, frame.ground_truth), (dts, frame.predictions or [])):
                target.extend({"id": len(target) + 1, "image_id": len(images), "category_id": d.class_id + 1,
                               "iscrowd": 0, "segmentation": d.rle, "area": float(mask_utils.area(d.rle)),
                               "bbox": mask_utils.toBbox(d.rle).tolist(), "score": d.score}
                              for d in detections if class_id is None or d.class_id == class_id)
    if not gts:
        return None
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(run.class_names)
                  if class_id is None or i == class_id]
    return coco_segm_eval(images, gts, dts, categories).stats


def frame_ap(run: RunRecord) -> float:
    """COCO mask AP with every annotated frame as an image."""
    stats = frame_mask_stats(run)
    return 0.0 if stats is None else max(float(stats[0]), 0.0)


def agnostic_ap(run: RunRecord) -> float:
    """Track AP with all classes as one."""
    gt, predictions = metrics.vis_inputs(run)
    for entry in (*gt["annotations"], *predictions):
        entry["category_id"] = 1
    gt["categories"] = [{"id": 1, "name": "object"}]
    return youtube_vis_ap(gt, predictions)["AP"]


def duplicate_rate(run: RunRecord, iou: float = 0.5) -> float:
    """Share of predictions whose mask overlaps a better-scored prediction of the frame by IoU > ``iou``."""
    total = duplicates = 0
    for frame in run.frames():
        preds = sorted(frame.predictions or [], key=lambda d: -d.score)
        total += len(preds)
        if len(preds) > 1:
            rles = [d.rle for d in preds]
            ious = mask_utils.iou(rles, rles, [0] * len(rles))
            duplicates += int(sum((ious[k, :k] > iou).any() for k in range(1, len(preds))))
    return duplicates / total if total else 0.0


def validate(model: MobileInst, dataset: VideoDataset, cfg: dict[str, Any]) -> dict[str, Any]:
    """Track AP & co. of ``model`` on ``dataset`` through the robot's inference path. ``cfg`` is the
    training config's ``val`` section: input_size [h, w], max_videos, keyframe_interval,
    score_threshold, mask_threshold, max_instances, duplicate_iou, split_components, association_threshold.
    The model is left in eval mode."""
    height, width = cfg["input_size"]
    engine = TorchEngine(model, dataset.classes, [(width, height)], score_threshold=cfg["score_threshold"],
                         mask_threshold=cfg["mask_threshold"], max_instances=cfg["max_instances"],
                         duplicate_iou=cfg.get("duplicate_iou"), split_components=cfg.get("split_components"))
    tracker = KernelTracker(engine, keyframe_interval=cfg["keyframe_interval"],
                            association_threshold=cfg["association_threshold"])
    source = validation_source(dataset, cfg["max_videos"])
    run = run_offline(source, tracker, {"model": "torch", "keyframe_interval": cfg["keyframe_interval"]},
                      progress=False)
    result = metrics.vis_metrics(run)
    tracking = metrics.tracking_metrics(run)["overall"]
    result.update(frame_AP=frame_ap(run), agnostic_AP=agnostic_ap(run), duplicates=duplicate_rate(run),
                  instances_per_frame=float(np.mean([len(f.predictions or []) for f in run.frames()])),
                  **{k: tracking[k] for k in ("MOTA", "HOTA", "IDSW", "IDSW_per_100") if k in tracking})
    return result
