"""scripts/recall_by_height.py: each labelled object takes at most one prediction, binned by its box height."""
import importlib.util
from pathlib import Path

import numpy as np

from mobileinst_ros.evaluation.records import Detection, FrameRecord, RunRecord, SequenceRecord, compress_mask

_spec = importlib.util.spec_from_file_location(
    "recall_by_height", Path(__file__).resolve().parents[1] / "scripts" / "recall_by_height.py")
recall_by_height = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recall_by_height)


def box(y0, y1, x0, x1, class_id=0, score=1.0):
    mask = np.zeros((200, 100), bool)
    mask[y0:y1, x0:x1] = True
    return Detection(track_id=0, class_id=class_id, score=score, rle=compress_mask(mask))


def test_recall_per_height_bin_with_one_prediction_per_object():
    short_a, short_b = box(0, 20, 0, 10), box(0, 20, 20, 30)   # 20 px tall
    tall = box(50, 150, 50, 80)                                   # 100 px tall
    predictions = [box(0, 20, 0, 10, score=0.9),                 # short_a exactly
                   box(2, 20, 0, 10, score=0.8),                 # short_a again: already claimed
                   box(50, 140, 50, 80, score=0.7),              # tall, IoU 0.9
                   box(0, 20, 20, 30, class_id=1, score=0.9)]    # short_b's place, other class
    frame = FrameRecord(0, [short_a, short_b, tall], predictions)
    unlabelled = FrameRecord(1, None, predictions)                # no annotation: left out
    run = RunRecord(["person", "car"], [SequenceRecord("s", 200, 100, [frame, unlabelled])])

    got = recall_by_height.recall_by_height(run, 0, [0, 40, 120], "mask")
    assert got == {"0-40px": {"labelled": 2, "recall": 0.5}, "40-120px": {"labelled": 1, "recall": 1.0},
                   "120-px": {"labelled": 0, "recall": None}}
    assert recall_by_height.recall_by_height(run, 1, [0, 40], "box") == {
        "0-40px": {"labelled": 0, "recall": None}, "40-px": {"labelled": 0, "recall": None}}
