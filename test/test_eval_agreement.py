"""Agreement with imperfect labels: phantoms per frame, track ids per ground-truth track and per-class
AP50, on hand-made cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from mobileinst_ros.evaluation import metrics
from mobileinst_ros.evaluation.records import Detection, FrameRecord, RunRecord, SequenceRecord, compress_mask

H, W = 40, 64


def _box(x: int, y: int = 5, size: int = 8) -> dict:
    mask = np.zeros((H, W), bool)
    mask[y:y + size, x:x + size] = True
    return compress_mask(mask)


def _run(frames: list[tuple[list[Detection], list[Detection]]]) -> RunRecord:
    sequence = SequenceRecord("s", H, W, [FrameRecord(t, gt, pred) for t, (gt, pred) in enumerate(frames)])
    return RunRecord(["person", "car"], [sequence])


def test_a_prediction_on_nothing_is_a_phantom_and_a_poor_mask_is_not() -> None:
    person = Detection(1, 0, 1.0, _box(4))
    frames = [([person], [Detection(5, 0, 0.9, _box(4)), Detection(6, 1, 0.8, _box(40))]),   # one phantom
              ([person], [Detection(5, 1, 0.9, _box(6))]),            # IoU 0.6, wrong class: matched, not phantom
              ([person], [Detection(5, 0, 0.9, _box(4, size=16))])]   # IoU 0.25 < PHANTOM_IOU: phantom
    result = metrics.agreement_metrics(_run(frames))
    assert result["frames"] == 3
    assert result["phantoms_per_frame"] == pytest.approx(2 / 3)


def test_ids_per_ground_truth_track_counts_re_identifications() -> None:
    """A person tracked as 10, 10, 11, 10 (two ids) and a car as 20 throughout (one id)."""
    frames = []
    for t, person_id in enumerate([10, 10, 11, 10]):
        gt = [Detection(1, 0, 1.0, _box(2 * t)), Detection(2, 1, 1.0, _box(40, y=20))]
        pred = [Detection(person_id, 0, 0.9, _box(2 * t)), Detection(20, 1, 0.9, _box(40, y=20))]
        frames.append((gt, pred))
    result = metrics.agreement_metrics(_run(frames))
    assert result["phantoms_per_frame"] == 0.0
    assert result["per_class"] == {"car": 1.0, "person": 2.0}
    assert result["ids_per_gt_track"] == pytest.approx(1.5)
    assert result["gt_tracks"] == result["gt_tracks_matched"] == 2


def test_unmatched_ground_truth_tracks_are_counted_apart() -> None:
    frames = [([Detection(1, 0, 1.0, _box(4)), Detection(2, 1, 1.0, _box(40))], [Detection(7, 0, 0.9, _box(4))])]
    result = metrics.agreement_metrics(_run(frames))
    assert result["ids_per_gt_track"] == 1.0
    assert (result["gt_tracks"], result["gt_tracks_matched"]) == (2, 1)


def test_per_class_ap50_beside_ap() -> None:
    """The person's mask has IoU 0.6: a hit at thresholds 0.5 and below 0.65 only; the car is exact."""
    frames = [([Detection(1, 0, 1.0, _box(4)), Detection(2, 1, 1.0, _box(40))],
               [Detection(7, 0, 0.9, _box(6)), Detection(8, 1, 0.9, _box(40))])]
    vis = metrics.vis_metrics(_run(frames))
    assert vis["per_class_AP50"]["person"] == pytest.approx(1.0)
    assert vis["per_class"]["person"] == pytest.approx(0.3)     # hits at 0.5, 0.55, 0.6 of 10 thresholds
    assert vis["per_class_AP50"]["car"] == pytest.approx(1.0) and vis["per_class"]["car"] == pytest.approx(1.0)
