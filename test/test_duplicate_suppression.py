"""Mask NMS in the engine's post-processing: a prediction whose mask overlaps a better-scored one above
``duplicate_iou`` is dropped, whatever its class; 1 keeps everything."""
import numpy as np
import pytest

from mobileinst_ros.runtime.engine import Engine, Features
from mobileinst_ros.runtime.model_dir import MODEL_DEFAULTS, ModelSpec
from mobileinst_ros.runtime.postprocess import not_duplicates
from mobileinst_ros.runtime.preprocess import make_geometry

GRID = (12, 16)  # stride-8 grid (h, w) of a 128x96 input


def _square(y0: int, x0: int, size: int) -> np.ndarray:
    """Mask logits on the grid: +8 inside a square, -8 outside."""
    logits = np.full(GRID, -8.0, np.float32)
    logits[y0:y0 + size, x0:x0 + size] = 8.0
    return logits


GEOMETRY = make_geometry((GRID[1] * 8, GRID[0] * 8), (GRID[1] * 8, GRID[0] * 8), "letterbox")


def test_the_lower_scored_of_two_overlapping_masks_goes():
    logits = np.stack([_square(2, 2, 6), _square(2, 3, 6), _square(2, 10, 4)])  # IoU(0, 1) = 30/42
    keep = not_duplicates(logits, np.array([0.6, 0.9, 0.5]), GEOMETRY, 8, 0.5, duplicate_iou=0.5)
    assert keep.tolist() == [False, True, True]
    assert not_duplicates(logits, np.array([0.6, 0.9, 0.5]), GEOMETRY, 8, 0.5, duplicate_iou=0.8).all()
    assert not_duplicates(logits, np.array([0.6, 0.9, 0.5]), GEOMETRY, 8, 0.5, duplicate_iou=1.0).all()


def test_a_suppressed_mask_suppresses_nothing():
    """A chain a > b > c where a overlaps b and b overlaps c but a not c: greedy NMS keeps a and c."""
    logits = np.stack([_square(0, 0, 6), _square(0, 2, 6), _square(0, 4, 6)])  # IoU(a,b)=IoU(b,c)=0.5, (a,c)=0.2
    keep = not_duplicates(logits, np.array([0.9, 0.8, 0.7]), GEOMETRY, 8, 0.5, duplicate_iou=0.4)
    assert keep.tolist() == [True, False, True]


def test_empty_masks_are_kept():
    logits = np.stack([_square(2, 2, 6), np.full(GRID, -8.0, np.float32)])
    assert not_duplicates(logits, np.array([0.9, 0.8]), GEOMETRY, 8, 0.5, duplicate_iou=0.1).all()


class _NoGraphs(Engine):
    def _load_graphs(self, resolution, precision):  # noqa: ANN001, ANN202  (post-processing only)
        return {}


@pytest.mark.parametrize(("duplicate_iou", "expected"), [(0.5, [0, 2]), (1.0, [0, 1, 2])])
def test_engine_select_drops_a_duplicate_of_another_class(duplicate_iou, expected):
    """Query 1 segments the same object as query 0 with another class and a lower score: a duplicate."""
    d = 3
    mask_features = np.stack([_square(2, 2, 6), _square(2, 10, 4), np.ones(GRID, np.float32)])  # [D, h, w]
    kernels = np.array([[1, 0, 0], [1, 0, 0.1], [0, 1, 0]], np.float32)
    logits = np.full((3, 2), -6.0, np.float32)
    logits[0, 0], logits[1, 1], logits[2, 0] = 4.0, 2.0, 1.0  # query 1 is class 1, the others class 0
    decoded = {"logits": logits, "objectness": np.full(3, 4.0, np.float32), "kernels": kernels}
    spec = ModelSpec(root=None, classes=["a", "b"], mean=127.0, scale=128.0, mask_stride=8, kernel_dim=d,
                     num_queries=3, defaults=dict(MODEL_DEFAULTS), graphs={(128, 96): {"fp32": {}}}, raw={})
    engine = _NoGraphs(spec, duplicate_iou=duplicate_iou)
    features = Features((128, 96), *(np.zeros(1),) * 4, mask_features[None], {})
    det = engine.select(decoded, features, GEOMETRY)
    assert sorted(det.query_indices.tolist()) == expected
    assert det.scores.tolist() == sorted(det.scores.tolist(), reverse=True)
