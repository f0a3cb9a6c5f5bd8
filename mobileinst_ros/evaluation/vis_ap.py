"""YouTube-VIS AP: COCO mask AP where the IoU of two tracks is taken over the whole video.

track IoU = (sum over frames of intersection) / (sum over frames of union). We get it exactly from
pycocotools' own mask IoU by laying a track's frames side by side: for column-major RLE, a
[H, W*T] image of the T frames is simply the concatenation of the per-frame run-length streams. Each
video becomes one COCO "image" of that width; areas are set to the track's mean area over the
frames where it is present (as the YouTube-VIS evaluation does), so the small/medium/large buckets
follow it. maxDets 1/10/100 as COCO.

numpy + pycocotools only: no torch (runs on robots).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["coco_segm_eval", "rle_counts", "track_rle", "youtube_vis_ap"]


def _counts_from_string(s: str) -> list[int]:
    """Decode pycocotools' compressed counts string (its LEB128-like, delta-coded format)."""
    counts: list[int] = []
    pos = 0
    while pos < len(s):
        value, shift, more = 0, 0, True
        while more:
            c = ord(s[pos]) - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def rle_counts(seg: dict | None, height: int, width: int) -> list[int]:
    """Uncompressed counts of one frame's segmentation (RLE dict, compressed or not, or None = empty)."""
    if seg is None:
        return [height * width]
    if list(seg["size"]) != [height, width]:
        raise ValueError(f"RLE size {seg['size']} does not match the video's [{height}, {width}]")
    counts = seg["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    counts = _counts_from_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if sum(counts) != height * width:
        raise ValueError(f"RLE counts sum to {sum(counts)}, expected {height * width}")
    return counts


def _normalised(counts: list[int]) -> list[int]:
    """Merge zero-length runs so runs strictly alternate, starting with 0s."""
    out: list[int] = []
    bit = 0
    for c in counts:
        if c:
            if out and len(out) % 2 == (1 - bit):  # last run has the same bit
                out[-1] += c
            else:
                if not out and bit == 1:
                    out.append(0)
                out.append(c)
        bit ^= 1
    return out or [0]


def track_rle(segmentations: list[dict | None], height: int, width: int) -> tuple[dict, float]:
    """Per-frame segmentations of one track -> (uncompressed RLE of the [H, W*T] side-by-side image,
    mean area over the frames where the track is present)."""
    stream: list[int] = []
    areas = []
    for seg in segmentations:
        counts = rle_counts(seg, height, width)
        area = sum(counts[1::2])
        if seg is not None and area > 0:
            areas.append(area)
        stream.extend(counts if len(stream) % 2 == 0 else [0, *counts])
    rle = {"size": [height, width * len(segmentations)], "counts": _normalised(stream)}
    return rle, float(np.mean(areas)) if areas else 0.0


def _video_table(gt: dict) -> dict[int, dict]:
    videos = {}
    for v in gt.get("videos") or []:
        videos[v["id"]] = {"height": v["height"], "width": v["width"], "length": len(v["file_names"])}
    if not videos:
        raise ValueError("ground truth has no videos")
    return videos


def _coco_annotation(ann_id: int, video_id: int, category_id: int, segs: list, video: dict, where: str) -> dict:
    if len(segs) != video["length"]:
        raise ValueError(f"{where}: {len(segs)} segmentations for video {video_id} of {video['length']} frames")
    rle, area = track_rle(segs, video["height"], video["width"])
    compressed = mask_utils.frPyObjects(rle, *rle["size"])
    return {"id": ann_id, "image_id": video_id, "category_id": category_id, "segmentation": compressed,
            "area": area, "bbox": mask_utils.toBbox(compressed).tolist()}


def coco_segm_eval(images: list[dict], gts: list[dict], dts: list[dict], categories: list[dict]) -> COCOeval:
    """pycocotools' segmentation evaluation, evaluated, accumulated and summarised (quietly), on
    in-memory COCO lists; ``evaluator.stats`` holds AP, AP50, AP75, APs/m/l, AR1/10/100."""
    coco_gt, coco_dt = COCO(), COCO()
    coco_gt.dataset = {"images": images, "annotations": gts, "categories": categories}
    coco_dt.dataset = {"images": images, "annotations": dts, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def youtube_vis_ap(gt: dict, predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """YouTube-VIS ground truth (dict as in annotations.json) and result entries
    ``{video_id, category_id, score, segmentations[per frame RLE or None]}`` ->
    ``{AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100}`` in [0, 1] plus ``per_class`` {name: AP} and
    ``per_class_AP50`` {name: AP at IoU 0.5} (-1 where a class has neither ground truth nor predictions)."""
    videos = _video_table(gt)
    categories = gt.get("categories") or []
    cat_ids = {c["id"] for c in categories}
    images = [{"id": vid, "height": v["height"], "width": v["width"] * v["length"]} for vid, v in videos.items()]

    gts = []
    for i, ann in enumerate(gt.get("annotations") or []):
        where = f"ground truth annotation {ann.get('id', i)}"
        if ann["video_id"] not in videos:
            raise ValueError(f"{where}: unknown video_id {ann['video_id']}")
        if all(s is None for s in ann["segmentations"]):
            continue
        entry = _coco_annotation(len(gts) + 1, ann["video_id"], ann["category_id"], ann["segmentations"],
                                 videos[ann["video_id"]], where)
        entry["iscrowd"] = int(ann.get("iscrowd", 0))
        gts.append(entry)
    if not gts:
        raise ValueError("ground truth has no non-empty annotations: AP is undefined")

    dts = []
    for i, pred in enumerate(predictions):
        where = f"prediction {i}"
        if pred["video_id"] not in videos:
            raise ValueError(f"{where}: unknown video_id {pred['video_id']}")
        if pred["category_id"] not in cat_ids:
            raise ValueError(f"{where}: unknown category_id {pred['category_id']}")
        entry = _coco_annotation(len(dts) + 1, pred["video_id"], pred["category_id"], pred["segmentations"],
                                 videos[pred["video_id"]], where)
        entry.update(score=float(pred["score"]), iscrowd=0)
        dts.append(entry)

    evaluator = coco_segm_eval(images, gts, dts, categories)
    stats = [max(float(s), 0.0) for s in evaluator.stats]
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"]
    result: dict[str, Any] = {n: stats[k] for k, n in enumerate(names[:6])}
    result.update(AR1=stats[6], AR10=stats[7], AR100=stats[8])
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    result["per_class"], result["per_class_AP50"] = {}, {}
    for k, cid in enumerate(evaluator.params.catIds):
        name = evaluator.cocoGt.cats[cid]["name"]
        result["per_class"][name] = _mean_precision(precision[:, :, k, 0, -1])
        result["per_class_AP50"][name] = _mean_precision(precision[0, :, k, 0, -1])  # iouThrs[0] == 0.5
    return result


def _mean_precision(p: np.ndarray) -> float:
    """Mean of COCOeval precision entries, -1 where none is defined (no ground truth, no predictions)."""
    return float(p[p > -1].mean()) if (p > -1).any() else -1.0
