"""``split_components``: each connected part of a mask becomes an instance of its own, and the tracker keeps
one id per part through keyframes and reused kernels. The oracle model's one red query segments every red
box at once: the "one person mask over a crowd" of a briefly trained model, with known answers."""
import numpy as np
import pytest

from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.runtime.postprocess import above_threshold, cell_iou, split_components
from mobileinst_ros.runtime.preprocess import make_geometry
from mobileinst_ros.tracking.tracker import KernelTracker
from oracle_model import COLOURS, GRAY, box_mask, export_oracle, iou

SIZE = (128, 96)  # (w, h), exported resolution; stride-8 grid 16 x 12
RED = 0
GRID = (12, 16)
GEOMETRY = make_geometry(SIZE, SIZE, "letterbox")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return Engine(export_oracle(tmp_path_factory.mktemp("oracle") / "model", [SIZE]))


def _red_boxes(boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    image = np.full((SIZE[1], SIZE[0], 3), GRAY, np.uint8)
    for x, y, w, h in boxes:
        image[y:y + h, x:x + w] = COLOURS[RED]
    return image


def _two_boxes(t: int) -> list[tuple[int, int, int, int]]:
    """Two red boxes 48 px apart, one moving down and one up 6 px per frame, so that which comes first on
    the grid (the order of the parts) swaps half-way: only where they are tells them apart."""
    return [(8, 8 + 6 * t, 24, 24), (80, 56 - 6 * t, 24, 24)]


def test_a_mask_is_cut_into_its_parts_and_fragments_are_dropped():
    logits = np.full((2, *GRID), -8.0, np.float32)
    logits[0, 2:6, 1:5] = 8.0      # part of 16 cells
    logits[0, 2:5, 9:12] = 6.0     # part of 9 cells
    logits[0, 10, 14] = 5.0        # a fragment: 1 cell, under 0.3 of the largest part
    logits[1, 7:10, 7:10] = 8.0    # one part only
    parts, parent = split_components(logits, GEOMETRY, 8, 0.5)
    assert parent.tolist() == [0, 0, 1]
    inside = above_threshold(parts, 0.5)
    assert inside[0].sum() == 16 and inside[0, 2:6, 1:5].all()
    assert inside[1].sum() == 9 and inside[1, 2:5, 9:12].all()
    np.testing.assert_array_equal(parts[2], logits[1])  # a single part is passed on unchanged
    # a part keeps its parent's own logits (the ring around it too), nothing of the other part
    np.testing.assert_array_equal(parts[0][1:7, 0:6], logits[0][1:7, 0:6])
    assert parts[0][2:5, 9:12].max() < -8.0


def test_parts_under_min_cells_are_fragments_even_when_large_enough_relative_to_the_largest():
    logits = np.full((1, *GRID), -8.0, np.float32)
    logits[0, 2:4, 1:3] = 8.0   # 4 cells
    logits[0, 8, 9:11] = 8.0    # 2 cells: half the largest part, but under 3 cells
    parts, parent = split_components(logits, GEOMETRY, 8, 0.5)
    assert parent.tolist() == [0] and above_threshold(parts, 0.5).sum() == 4
    assert len(split_components(logits, GEOMETRY, 8, 0.5, min_cells=2)[0]) == 2


def test_cell_iou_of_masks_on_one_grid_including_none():
    a = np.zeros((2, *GRID), bool)
    a[0, 0:2, 0:2] = True
    a[1, 0:2, 1:3] = True
    np.testing.assert_allclose(cell_iou(a, a), [[1, 2 / 6], [2 / 6, 1]])
    assert cell_iou(a, a[:0]).shape == (2, 0) and cell_iou(a[:0], a).shape == (0, 2)


def test_the_engine_reports_each_part_as_an_instance(engine):
    image = _red_boxes(_two_boxes(0))
    engine.split_components = False
    merged = engine.infer(image)
    engine.split_components = True
    try:
        split = engine.infer(image)
    finally:
        engine.split_components = False
    assert [i.class_id for i in merged] == [RED]
    assert [i.class_id for i in split] == [RED, RED]
    for box in _two_boxes(0):
        assert max(iou(i.mask, box_mask(SIZE, box)) for i in split) > 0.7


@pytest.mark.parametrize("interval", [1, 3])
def test_each_part_keeps_its_own_track_id_while_it_moves(engine, interval):
    engine.split_components = True
    try:
        tracker = KernelTracker(engine, keyframe_interval=interval)
        ids_of_box = [{}, {}]
        for t in range(9):
            result = tracker.process(_red_boxes(_two_boxes(t)))
            assert len(result.instances) == 2, f"frame {t}"
            for b, box in enumerate(_two_boxes(t)):
                truth = box_mask(SIZE, box)
                best = max(result.instances, key=lambda i: iou(i.mask, truth))
                assert iou(best.mask, truth) > 0.6, f"frame {t}, box {b}"
                ids_of_box[b][best.track_id] = ids_of_box[b].get(best.track_id, 0) + 1
    finally:
        engine.split_components = False
    assert [list(ids) for ids in ids_of_box] == [[1], [2]] or [list(ids) for ids in ids_of_box] == [[2], [1]]


def test_parts_at_the_grid_edges_and_one_cell_apart_keep_their_rings():
    logits = np.full((1, *GRID), -8.0, np.float32)
    logits[0, 0:3, 0:3] = 8.0                               # in a corner: its ring is cut by the grid
    logits[0, GRID[0] - 3:, 5:8] = 8.0                      # on the bottom edge
    logits[0, GRID[0] - 3:, 9:12] = 7.0                     # one background column (8) between them
    parts, parent = split_components(logits, GEOMETRY, 8, 0.5)
    assert parent.tolist() == [0, 0, 0]
    np.testing.assert_array_equal(parts[0][0:4, 0:4], logits[0][0:4, 0:4])
    assert (parts[0][4:, :] < -8.0).all() and (parts[0][:, 4:] < -8.0).all()
    # the column between the two bottom parts is in both rings, each part's other cells only in its own
    np.testing.assert_array_equal(parts[1][GRID[0] - 4:, 4:9], logits[0][GRID[0] - 4:, 4:9])
    np.testing.assert_array_equal(parts[2][GRID[0] - 4:, 8:13], logits[0][GRID[0] - 4:, 8:13])
    assert (parts[1][:, 9:] < -8.0).all() and (parts[2][:, :8] < -8.0).all()
