"""Non-keyframes on a shrunk image (``KernelTracker.non_keyframe_scale``): the shallow backbone runs at the
smaller size, its x3 is upsampled to the keyframe's grid, and the reused kernels still find the objects.

The engine runs the real exported ONNX of the hand-weighted colour model (``oracle_model.py``).
"""
import json

import numpy as np
import pytest

from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.tracking.tracker import KernelTracker
from oracle_model import box_mask, export_oracle, frame, iou

SIZE = (128, 96)  # (w, h), exported resolution
RED, GREEN = 0, 1


def moving(t: int) -> dict:
    return {RED: (8 + 6 * t, 16, 32, 32), GREEN: (88, 56 - 3 * t, 28, 28)}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_oracle(tmp_path_factory.mktemp("oracle") / "model", [SIZE])


@pytest.fixture(scope="module")
def engine(model):
    return Engine(model)


def test_scaled_x3_has_the_full_grid_and_scale_one_is_the_plain_shallow_graph(engine):
    prepared = engine.prepare(frame(SIZE, moving(0)))
    full = engine.shallow(prepared)
    np.testing.assert_array_equal(engine.shallow_scaled(prepared, 1.0), full)
    half = engine.shallow_scaled(prepared, 0.5)
    assert half.shape == full.shape and half.dtype == np.float32
    assert engine.scaled_resolution(SIZE, 0.5) == (64, 48)
    assert engine.scaled_resolution(SIZE, 0.01) == (8, 8)  # at least one cell


def test_non_keyframes_run_the_shallow_graph_small_and_keep_ids_and_masks(engine, shallow_sizes):
    tracker = KernelTracker(engine, keyframe_interval=3, non_keyframe_scale=0.75)
    results = [tracker.process(frame(SIZE, moving(t))) for t in range(6)]
    assert [r.is_keyframe for r in results] == [True, False, False] * 2
    assert shallow_sizes == [(96, 128), (72, 96), (72, 96)] * 2
    for t, r in enumerate(results):
        assert {i.class_id: i.track_id for i in r.instances} == {RED: 1, GREEN: 2}, f"frame {t}"
        for inst in r.instances:
            assert iou(inst.mask, box_mask(SIZE, moving(t)[inst.class_id])) > 0.6, f"frame {t}"


@pytest.mark.parametrize("reason, feature_change, boxes", [
    ("features", 0.35, {RED: (8, 8, 24, 24), GREEN: (20, 60, 30, 30), 2: (70, 40, 40, 40)}),  # new objects
    ("area", 10.0, {RED: (8, 8, 24, 24)}),                                                     # green is gone
])
def test_a_triggered_keyframe_recomputes_x3_at_full_size(engine, monkeypatch, reason, feature_change, boxes):
    tracker = KernelTracker(engine, keyframe_interval=100, adaptive_keyframes=True, feature_change=feature_change,
                            non_keyframe_scale=0.75)
    tracker.process(frame(SIZE, {RED: (8, 8, 24, 24), GREEN: (20, 60, 30, 30)}))
    given = []
    deep_features = engine.deep_features
    monkeypatch.setattr(engine, "deep_features", lambda res, x3: given.append(x3) or deep_features(res, x3))
    image = frame(SIZE, boxes)
    result = tracker.process(image)
    assert result.is_keyframe and result.keyframe_reason == reason
    np.testing.assert_array_equal(given[-1], engine.shallow(engine.prepare(image)))


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.5])
def test_a_scale_outside_zero_to_one_is_refused(engine, scale):
    with pytest.raises(ValueError, match="non_keyframe_scale must be in"):
        KernelTracker(engine, non_keyframe_scale=scale)


def test_the_bench_times_scaled_non_keyframes_beside_full_ones(tmp_path):
    from mobileinst_ros.bench.bench import main as bench_main

    out = tmp_path / "bench.json"
    assert bench_main(["--model", "models/shapes", "--resolution", "640x480", "--rounds", "1", "--warmup", "0",
                       "--frames", "3", "--no-int8", "--no-peers", "--non-keyframe-scale", "0.75",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["non_keyframe_scale"] == 0.75
    scaled = result["latency_ms"]["640x480"]["fp32"]["T3-scaled"]
    assert scaled["frames"] == 3 and scaled["keyframe_fraction"] == pytest.approx(1 / 3, abs=0.01)
    assert result["ratios"]["non_keyframe_over_keyframe_fp32_scaled"] > 0
    assert "non_keyframe_over_keyframe_fp32_scaled <= 0.35" in result["targets"]


def test_a_per_resolution_export_cannot_shrink_non_keyframes(tmp_path):
    import torch

    from mobileinst_ros.export.export import export_model
    from oracle_model import CLASSES, OracleModel

    torch.set_num_threads(1)
    export_model(OracleModel().eval(), CLASSES, tmp_path / "static", [SIZE], layout="per-resolution")
    engine = Engine(tmp_path / "static")
    assert not engine.shallow_any_size()
    KernelTracker(engine, non_keyframe_scale=1.0)
    with pytest.raises(ValueError, match="shallow graphs that take any size"):
        KernelTracker(engine, non_keyframe_scale=0.75)
