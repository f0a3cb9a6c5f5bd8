"""Tracking by kernels: association, keyframes, kernel/feature reuse, lost tracks, adaptive keyframes.

The engine runs the real exported ONNX of the hand-weighted colour model (``oracle_model.py``), so the
expected instances and ids are known exactly.
"""
import logging

import numpy as np
import pytest

from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.tracking.association import associate, cosine_similarity
from mobileinst_ros.tracking.tracker import KernelTracker
from oracle_model import box_mask, export_oracle, frame, iou

SIZE = (128, 96)  # (w, h) of the test video, exported resolution
RED, GREEN, BLUE = 0, 1, 2


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return Engine(export_oracle(tmp_path_factory.mktemp("oracle") / "model", [SIZE]))


def ids_by_class(result):
    return {inst.class_id: inst.track_id for inst in result.instances}


def moving(t):
    """Red moves right 6 px per frame, green moves up 3 px per frame; they never overlap."""
    return {RED: (8 + 6 * t, 16, 24, 24), GREEN: (96, 64 - 3 * t, 20, 20)}


# --- association -----------------------------------------------------------------------------------

def test_association_recovers_a_permutation_under_noise():
    rng = np.random.default_rng(0)
    tracks = rng.normal(size=(6, 32))
    order = rng.permutation(6)
    detections = tracks[order] + 0.1 * rng.normal(size=(6, 32))
    result = associate(tracks, detections, threshold=0.5)
    assert len(result.matches) == 6
    for t, d in result.matches:
        assert order[d] == t


def test_association_rejects_pairs_below_threshold_and_keeps_them_unmatched():
    tracks = np.array([[1.0, 0.0], [0.0, 1.0]])
    detections = np.array([[1.0, 0.1], [-1.0, 0.0]])   # second is opposite to both tracks
    result = associate(tracks, detections, threshold=0.5)
    assert result.matches.tolist() == [[0, 0]]
    assert result.unmatched_tracks.tolist() == [1]
    assert result.unmatched_detections.tolist() == [1]


def test_association_with_no_tracks_or_no_detections():
    empty = associate(np.zeros((0, 4)), np.ones((3, 4)), 0.5)
    assert empty.matches.shape == (0, 2) and empty.unmatched_detections.tolist() == [0, 1, 2]
    none = associate(np.ones((2, 4)), np.zeros((0, 4)), 0.5)
    assert none.unmatched_tracks.tolist() == [0, 1]


def test_cosine_similarity_is_scale_free():
    a = np.array([[1.0, 2.0, 3.0]])
    assert cosine_similarity(a, 5 * a)[0, 0] == pytest.approx(1.0)
    assert cosine_similarity(a, np.zeros((1, 3)))[0, 0] == 0.0


# --- keyframes and reuse ----------------------------------------------------------------------------

def test_keyframe_every_T_frames_and_reused_kernels_follow_moving_objects(engine):
    tracker = KernelTracker(engine, keyframe_interval=3)
    results = [tracker.process(frame(SIZE, moving(t))) for t in range(9)]
    assert [r.is_keyframe for r in results] == [True, False, False] * 3
    assert results[0].keyframe_reason == "first" and results[3].keyframe_reason == "interval"
    for t, r in enumerate(results):
        assert ids_by_class(r) == {RED: 1, GREEN: 2}, f"frame {t}"
        for inst in r.instances:
            # on non-keyframes the masks come from reused kernels x the current frame's features
            assert iou(inst.mask, box_mask(SIZE, moving(t)[inst.class_id])) > 0.7, f"frame {t}"
            assert inst.mask.shape == (SIZE[1], SIZE[0])
    non_key = results[1]
    assert "instance_decoder" not in non_key.timings_ms
    assert set(results[0].timings_ms) == {"preprocess", "backbone", "instance_decoder", "postprocess", "tracking"}


@pytest.mark.parametrize("reuse, deep_runs", [("features", 1), ("kernels", 3)])
def test_reuse_mode_decides_whether_non_keyframes_run_the_deep_backbone(engine, reuse, deep_runs, monkeypatch):
    calls = []
    deep = engine.deep
    monkeypatch.setattr(engine, "deep", lambda *args: calls.append(1) or deep(*args))  # a spy: the graph runs
    tracker = KernelTracker(engine, keyframe_interval=3, reuse_mode=reuse)
    results = [tracker.process(frame(SIZE, moving(t))) for t in range(3)]
    assert [r.is_keyframe for r in results] == [True, False, False]
    assert len(calls) == deep_runs
    for t, r in enumerate(results):
        assert "instance_decoder" not in r.timings_ms or t == 0  # kernels are reused in both modes
        assert ids_by_class(r) == {RED: 1, GREEN: 2}
        for inst in r.instances:
            assert iou(inst.mask, box_mask(SIZE, moving(t)[inst.class_id])) > 0.7


def test_unknown_reuse_mode_is_refused(engine):
    with pytest.raises(ValueError, match="reuse_mode must be one of"):
        KernelTracker(engine, reuse_mode="everything")


def test_non_keyframe_masks_move_while_kernels_stay_fixed(engine):
    tracker = KernelTracker(engine, keyframe_interval=100)
    first = tracker.process(frame(SIZE, moving(0)))
    later = tracker.process(frame(SIZE, moving(5)))
    assert not later.is_keyframe
    red_then = next(i for i in first.instances if i.class_id == RED)
    red_now = next(i for i in later.instances if i.class_id == RED)
    assert red_now.bbox[0] - red_then.bbox[0] == pytest.approx(30, abs=4)


def test_new_instance_gets_a_new_id_at_the_next_keyframe(engine):
    tracker = KernelTracker(engine, keyframe_interval=2)
    seen = []
    for t in range(6):
        boxes = moving(t)
        if t >= 3:
            boxes[BLUE] = (56, 56, 20, 20)
        seen.append(ids_by_class(tracker.process(frame(SIZE, boxes))))
    assert seen[3] == {RED: 1, GREEN: 2}             # frame 3 is a non-keyframe: blue not yet known
    assert seen[4] == {RED: 1, GREEN: 2, BLUE: 3}
    assert seen[5] == {RED: 1, GREEN: 2, BLUE: 3}


@pytest.mark.parametrize("max_age, expected_id", [(10, 2), (1, 3)])
def test_lost_track_is_found_again_only_within_max_track_age(engine, max_age, expected_id):
    tracker = KernelTracker(engine, keyframe_interval=1, max_track_age=max_age)
    for t in range(8):
        boxes = moving(t)
        if 2 <= t < 5:
            del boxes[GREEN]   # green leaves for three frames
        ids = ids_by_class(tracker.process(frame(SIZE, boxes)))
    assert ids == {RED: 1, GREEN: expected_id}


def test_interval_and_thresholds_change_at_run_time(engine):
    tracker = KernelTracker(engine, keyframe_interval=3)
    tracker.process(frame(SIZE, moving(0)))
    tracker.keyframe_interval = 1
    assert tracker.process(frame(SIZE, moving(1))).is_keyframe
    engine_threshold = engine.score_threshold
    try:
        engine.score_threshold = 1.01     # nothing can score above 1
        assert tracker.process(frame(SIZE, moving(2))).instances == []
    finally:
        engine.score_threshold = engine_threshold
    with pytest.raises(ValueError, match="keyframe_interval"):
        tracker.keyframe_interval = 0


def test_reset_restarts_ids_at_one(engine):
    tracker = KernelTracker(engine, keyframe_interval=1)
    tracker.process(frame(SIZE, {GREEN: (10, 10, 20, 20)}))
    assert ids_by_class(tracker.process(frame(SIZE, {RED: (60, 10, 20, 20)}))) == {RED: 2}
    tracker.reset()
    result = tracker.process(frame(SIZE, {RED: (60, 10, 20, 20)}))
    assert result.keyframe_reason == "first" and ids_by_class(result) == {RED: 1}


# --- adaptive keyframes -----------------------------------------------------------------------------

@pytest.mark.parametrize("adaptive", [False, True])
def test_vanishing_instance_triggers_an_early_keyframe_only_when_adaptive(engine, adaptive):
    tracker = KernelTracker(engine, keyframe_interval=5, adaptive_keyframes=adaptive, feature_change=10.0)
    tracker.process(frame(SIZE, moving(0)))
    gone = moving(1)
    del gone[GREEN]
    result = tracker.process(frame(SIZE, gone))
    assert result.is_keyframe == adaptive
    assert result.keyframe_reason == ("area" if adaptive else "")
    assert ids_by_class(result) == {RED: 1}


def test_scene_change_triggers_a_keyframe_that_finds_new_instances(engine):
    tracker = KernelTracker(engine, keyframe_interval=5, adaptive_keyframes=True)
    tracker.process(frame(SIZE, {RED: (8, 8, 24, 24)}))
    result = tracker.process(frame(SIZE, {RED: (8, 8, 24, 24), BLUE: (70, 40, 40, 40), GREEN: (20, 60, 30, 30)}))
    assert result.keyframe_reason == "features"
    ids = ids_by_class(result)
    assert ids[RED] == 1 and {ids[BLUE], ids[GREEN]} == {2, 3}


# --- dropped frames ---------------------------------------------------------------------------------

def test_nan_outputs_drop_the_frame_with_a_warning_and_keep_the_tracks(engine, caplog):
    tracker = KernelTracker(engine, keyframe_interval=2)
    tracker.process(frame(SIZE, moving(0)))
    with caplog.at_level(logging.WARNING, logger="mobileinst_ros.tracking.tracker"):
        bad = tracker.process(frame(SIZE, moving(1), white=True))
    assert bad.dropped and bad.instances == [] and "NaN" in caplog.text
    after = [tracker.process(frame(SIZE, moving(t))) for t in (2, 3)]
    assert [r.is_keyframe for r in after] == [False, True]   # the dropped frame did not count
    assert all(ids_by_class(r) == {RED: 1, GREEN: 2} for r in after)
