"""Evaluation metrics: perfect runs score 1, hand-made cases give their known values, and
YouTube-VIS AP on one-frame videos equals pycocotools' image AP computed independently."""
from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mobileinst_ros.data import synth
from mobileinst_ros.evaluation import metrics
from mobileinst_ros.evaluation.vis_ap import coco_segm_eval
from mobileinst_ros.evaluation.records import Detection, FrameRecord, RunRecord, SequenceRecord, compress_mask

H, W = 40, 48


def _box(x: int, y: int = 5, size: int = 8) -> dict:
    mask = np.zeros((H, W), bool)
    mask[y:y + size, x:x + size] = True
    return compress_mask(mask)


def _synthetic_ground_truth() -> RunRecord:
    """Two rendered synthetic clips (occlusions, entering objects) as ground truth."""
    run = RunRecord(list(synth.CATEGORIES))
    for index in range(2):
        video = synth.generate_video(seed=11, index=index, frames=5, width=W, height=H)
        sequence = SequenceRecord(f"v{index}", H, W)
        for t in range(5):
            gt = [Detection(100 * index + k, c - 1, 1.0, compress_mask(masks[t]))
                  for k, (c, masks) in enumerate(zip(video.category_ids, video.masks)) if masks[t] is not None]
            sequence.frames.append(FrameRecord(t, gt, None))
        run.sequences.append(sequence)
    return run


def test_perfect_predictions_score_one() -> None:
    run = _synthetic_ground_truth()
    for frame in run.frames():
        frame.predictions = [Detection(d.track_id + 7, d.class_id, 0.9, d.rle) for d in frame.ground_truth]
    vis = metrics.vis_metrics(run)
    assert vis["AP"] == pytest.approx(1.0) and vis["AP50"] == pytest.approx(1.0)
    assert vis["AR10"] == pytest.approx(1.0)
    overall = metrics.tracking_metrics(run)["overall"]
    assert overall["HOTA"] == pytest.approx(1.0) and overall["IDF1"] == pytest.approx(1.0)
    assert overall["IDSW"] == 0 and overall["MOTA"] == pytest.approx(1.0)
    assert metrics.drop_stats(run) == {"frames": 10, "dropped": 0, "drop_rate": 0.0}


def test_dropped_frames_are_misses() -> None:
    run = _synthetic_ground_truth()
    for t, frame in enumerate(run.frames()):
        keep = t % 2 == 0
        frame.predictions = [Detection(d.track_id, d.class_id, 0.9, d.rle) for d in frame.ground_truth] if keep else None
    overall = metrics.tracking_metrics(run)["overall"]
    assert overall["DetA"] < 0.75 and overall["IDSW"] == 0 and overall["IDP"] == pytest.approx(1.0)
    assert metrics.drop_stats(run)["dropped"] == 5
    assert metrics.vis_metrics(run)["AP"] < 1.0


def test_an_identity_switch_gives_the_known_tracking_figures() -> None:
    """One object over 4 frames, perfectly segmented, but predicted as id 10 then id 11.
    HOTA: DetA 1, AssA 2/4 -> sqrt(0.5); IDF1 2*2 / (2*2 + 2 + 2) = 0.5; MOTA 1 - 1/4."""
    sequence = SequenceRecord("s", H, W)
    for t in range(4):
        gt = [Detection(1, 0, 1.0, _box(4 * t))]
        sequence.frames.append(FrameRecord(t, gt, [Detection(10 if t < 2 else 11, 0, 0.9, _box(4 * t))]))
    result = metrics.tracking_metrics(RunRecord(["a", "b"], [sequence]))
    overall = result["overall"]
    assert overall["DetA"] == pytest.approx(1.0) and overall["AssA"] == pytest.approx(0.5)
    assert overall["HOTA"] == pytest.approx(np.sqrt(0.5))
    assert overall["IDF1"] == pytest.approx(0.5) and overall["IDSW"] == 1
    assert overall["IDSW_per_100"] == pytest.approx(25.0)  # one switch in 4 track-frames
    assert overall["MOTA"] == pytest.approx(0.75)
    assert list(result["per_class"]) == ["a"]


def test_ranked_false_positive_gives_the_known_ap() -> None:
    """Two objects; ranked predictions TP (0.9), FP (0.8), TP (0.7). COCO's 101-point interpolated
    precision is 1 up to recall 0.5 and 2/3 above: AP = (51 + 50 * 2/3) / 101 at every IoU threshold."""
    sequence = SequenceRecord("s", H, W)
    for t in range(3):
        gt = [Detection(1, 0, 1.0, _box(2)), Detection(2, 0, 1.0, _box(20))]
        pred = [Detection(1, 0, 0.9, _box(2)), Detection(2, 0, 0.8, _box(30, y=25)), Detection(3, 0, 0.7, _box(20))]
        sequence.frames.append(FrameRecord(t, gt, pred))
    vis = metrics.vis_metrics(RunRecord(["a"], [sequence]))
    assert vis["AP"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert vis["AR1"] == pytest.approx(0.5) and vis["AR10"] == pytest.approx(1.0)


def _coco_image_ap(run: RunRecord) -> float:
    """pycocotools' own image AP, treating each one-frame sequence as an image."""
    images, gts, dts = [], [], []
    for i, sequence in enumerate(run.sequences):
        images.append({"id": i + 1, "height": H, "width": W})
        frame = sequence.frames[0]
        for d in frame.ground_truth:
            gts.append({"id": len(gts) + 1, "image_id": i + 1, "category_id": d.class_id + 1, "segmentation": d.rle,
                        "area": float(mask_utils.area(d.rle)), "bbox": list(mask_utils.toBbox(d.rle)), "iscrowd": 0})
        for d in frame.predictions:
            dts.append({"id": len(dts) + 1, "image_id": i + 1, "category_id": d.class_id + 1, "segmentation": d.rle,
                        "area": float(mask_utils.area(d.rle)), "bbox": list(mask_utils.toBbox(d.rle)),
                        "score": d.score, "iscrowd": 0})
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(run.class_names)]
    return float(coco_segm_eval(images, gts, dts, categories).stats[0])


def test_vis_ap_on_single_frames_matches_pycocotools_image_ap() -> None:
    rng = np.random.default_rng(3)
    run = RunRecord(["a", "b"])
    for i in range(6):
        gt, pred = [], []
        for k in range(3):
            x, y, c = int(rng.integers(0, 36)), int(rng.integers(0, 28)), int(rng.integers(2))
            gt.append(Detection(k, c, 1.0, _box(x, y, 10)))
            dx, dy = (int(v) for v in rng.integers(-3, 4, size=2))
            pred.append(Detection(k, c if rng.random() < 0.8 else 1 - c, float(rng.random()),
                                  _box(max(x + dx, 0), max(y + dy, 0), 10)))
        run.sequences.append(SequenceRecord(f"img{i}", H, W, [FrameRecord(0, gt, pred)]))
    ours = metrics.vis_metrics(run)["AP"]
    assert 0.05 < ours < 0.95
    assert ours == pytest.approx(_coco_image_ap(run), abs=1e-9)


def test_latency_percentiles_and_frames_without_ground_truth() -> None:
    sequence = SequenceRecord("s", H, W)
    for t in range(100):
        sequence.frames.append(FrameRecord(t, None, [], latency_ms=float(t), timings_ms={"net": t / 2},
                                           is_keyframe=t % 4 == 0))
    run = RunRecord(["a"], [sequence])
    stats = metrics.latency_stats(run)
    assert stats["total"]["p50"] == pytest.approx(49.5) and stats["total"]["p99"] == pytest.approx(98.01)
    assert stats["keyframe"]["count"] == 25 and stats["stages"]["net"]["max"] == pytest.approx(49.5)
    assert not run.has_ground_truth
    with pytest.raises(ValueError, match="nothing to score"):
        metrics.tracking_metrics(run)
