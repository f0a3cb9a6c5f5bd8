"""Non-keyframes that run the shallow backbone only around the instances they follow
(``KernelTracker.non_keyframe_crops``, ``Engine.shallow_in_windows``): the cells a non-keyframe's masks read
come out as a whole-image run gives them, on the shipped models' real graphs, at a fraction of the work.
"""
from pathlib import Path

import numpy as np
import pytest

from mobileinst_ros.data.synth import generate_video
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.tracking.tracker import KernelTracker, _merge_crops

SIZE = (384, 288)
GRID = (SIZE[1] // 8, SIZE[0] // 8)


@pytest.fixture(scope="module")
def frames():
    return generate_video(seed=2000, index=3, frames=7, width=SIZE[0], height=SIZE[1]).frames


@pytest.fixture(scope="module")
def shapes():
    return Engine("models/shapes", resolution=SIZE)


@pytest.mark.parametrize("model, precision", [("models/default", "fp32"), ("models/shapes", "fp32"),
                                              ("runs/models/default-int8", "int8")])
def test_windows_get_the_whole_images_x3_and_the_rest_is_kept(model, precision, frames):
    if precision == "int8" and not (Path(model) / "int8").is_dir():
        pytest.skip(f"{model}: no INT8 graphs here (mobileinst-quantize makes them)")
    engine = Engine(model, resolution=SIZE, precision=precision)
    # the lean Lite0 prefix sees 59 px, 29 on each side of a cell: 4 cells of context
    assert engine.shallow_context(SIZE) == 4
    prepared = engine.prepare(frames[0])
    whole = engine.shallow(prepared)
    base = np.full_like(whole, 7.0)
    windows = [(0, 0, 5, 7), (10, 12, 20, 30), (GRID[0] - 6, GRID[1] - 3, GRID[0], GRID[1])]  # corners, middle
    got = engine.shallow_in_windows(prepared, base, windows)
    inside = np.zeros(GRID, bool)
    for y0, x0, y1, x1 in windows:
        inside[y0:y1, x0:x1] = True
        np.testing.assert_allclose(got[..., y0:y1, x0:x1], whole[..., y0:y1, x0:x1], rtol=0, atol=1e-4)
    assert (got[..., ~inside] == 7.0).all()
    # one cell less context and the windows' cells differ: the probe found the least that works
    short = 4 - 1
    crop = prepared.tensor[:, (10 - short) * 8:(20 + short) * 8, (12 - short) * 8:(30 + short) * 8]
    x3 = engine._graphs[SIZE]["shallow"].run(image=np.ascontiguousarray(crop))["x3"]
    assert np.abs(x3[..., short:short + 10, short:short + 18] - whole[..., 10:20, 12:30]).max() > 0.01


def test_a_shallow_graph_that_sees_the_whole_image_gets_no_crops(frames, shallow_sizes, monkeypatch):
    engine = Engine("models/shapes", resolution=SIZE)
    shallow = engine._graphs[SIZE]["shallow"]
    run = shallow.run
    monkeypatch.setattr(shallow, "run",
                        lambda **feeds: {"x3": run(**feeds)["x3"] + np.float32(feeds["image"].mean() / 255)})
    assert engine.shallow_context(SIZE) is None  # a global operation: no crop is ever exact
    tracker = KernelTracker(engine, keyframe_interval=3)
    tracker.process(frames[0])
    assert not tracker.process(frames[1]).is_keyframe
    assert [s for s in shallow_sizes if s[0] == SIZE[1]] == [(SIZE[1], SIZE[0])] * 2  # whole images only


def test_non_keyframes_run_crops_and_give_the_whole_images_masks(shapes, frames, shallow_sizes):
    results = {}
    shapes.shallow_context(SIZE)  # its one-time probe runs small images: not a non-keyframe's work
    for crops in (False, True):
        shallow_sizes.clear()
        tracker = KernelTracker(shapes, keyframe_interval=3, non_keyframe_crops=crops)
        results[crops] = [tracker.process(f) for f in frames]
        keyframes = [r.is_keyframe for r in results[crops]]
        assert keyframes == [True, False, False] * 2 + [True]
        sizes = list(shallow_sizes)
    # whole images on keyframes, smaller crops (several per frame) on the others
    assert sizes.count((SIZE[1], SIZE[0])) == 3
    crops_area = sum(h * w for h, w in sizes if (h, w) != (SIZE[1], SIZE[0]))
    assert 0 < crops_area < 4 * SIZE[0] * SIZE[1] * 0.8
    differ = union = 0
    for whole, cropped in zip(results[False], results[True]):
        assert [i.track_id for i in cropped.instances] == [i.track_id for i in whole.instances]
        assert whole.instances, "the shapes model finds the shapes"
        for a, b in zip(whole.instances, cropped.instances):
            assert (a.mask & b.mask).sum() / (a.mask | b.mask).sum() > 0.9  # a small mask's edge cells
            differ += (a.mask ^ b.mask).sum()
            union += (a.mask | b.mask).sum()
    assert differ < 0.01 * union


def test_a_non_keyframe_with_nothing_to_follow_runs_no_backbone(shapes, shallow_sizes):
    grey = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
    shapes.shallow_context(SIZE)  # the engine's one-off probe of a crop's context (runs the graph on crops)
    shallow_sizes.clear()
    tracker = KernelTracker(shapes, keyframe_interval=3)
    results = [tracker.process(grey) for _ in range(3)]
    assert [r.instances for r in results] == [[], [], []]
    assert shallow_sizes == [(SIZE[1], SIZE[0])]  # the keyframe's only


@pytest.mark.parametrize("options", [
    {"non_keyframe_crops": False},
    # the feature trigger compares whole images (the mask triggers off, so that the frame stays a non-keyframe)
    {"adaptive_keyframes": True, "area_ratio": 1e-6, "maskness_drop": 1.0},
    {"reuse_mode": "kernels"},            # the paper's mode runs the deep backbone on x3
    {"non_keyframe_scale": 0.75},
])
def test_whole_images_where_crops_do_not_apply(shapes, frames, shallow_sizes, options):
    tracker = KernelTracker(shapes, keyframe_interval=3, **options)
    tracker.process(frames[0])
    result = tracker.process(frames[1])
    assert not result.is_keyframe and result.instances
    full = (SIZE[1], SIZE[0]) if options.get("non_keyframe_scale", 1) == 1 else (216, 288)
    assert shallow_sizes[-1] == full


def test_whole_masks_have_no_window_to_crop(shapes, frames, shallow_sizes, monkeypatch):
    monkeypatch.setattr(shapes, "split_components", False)
    tracker = KernelTracker(shapes, keyframe_interval=3)
    tracker.process(frames[0])
    tracker.process(frames[1])
    assert shallow_sizes == [(SIZE[1], SIZE[0])] * 2


def test_crops_merge_only_where_one_costs_no_more_than_two():
    grid = (60, 80)
    near = [(10, 10, 20, 20), (10, 21, 20, 30)]              # side by side: their contexts overlap
    far = [(0, 0, 5, 5), (50, 70, 60, 80)]
    assert _merge_crops(near, grid, 4) == [(10, 10, 20, 30)]
    assert _merge_crops(near, grid, 0) == near                  # without context, two cost less than one
    assert sorted(_merge_crops(far, grid, 4)) == sorted(far)
    assert _merge_crops(near + far + [(3, 3, 3, 9)], grid, 4) == [(10, 10, 20, 30), *far]  # empty ones go
