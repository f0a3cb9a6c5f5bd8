"""COCO uncompressed RLE in Instance.mask_rle: round trips and pycocotools compatibility."""
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from mobileinst_ros.masks import decode_mask, encode_mask, mask_bbox


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    one_pixel = np.zeros((7, 5), bool)
    one_pixel[3, 2] = True
    corner = np.zeros((9, 11), bool)
    corner[0, 0] = True
    border = np.zeros((13, 17), bool)
    border[:, -1] = True
    border[-1, :] = True
    blob = np.zeros((31, 23), bool)
    blob[4:20, 6:15] = True
    return {
        "empty": np.zeros((4, 6), bool),
        "full": np.ones((5, 3), bool),
        "one_pixel": one_pixel,
        "top_left_corner": corner,
        "border_touching": border,
        "odd_sized_blob": blob,
        "random_noise": rng.random((37, 29)) > 0.5,
        "one_row": np.array([[0, 1, 1, 0, 1]], bool),
        "one_column": np.array([[1], [1], [0]], bool),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_round_trip(name: str) -> None:
    mask = _cases()[name]
    counts = encode_mask(mask)
    assert counts.dtype == np.uint32
    assert int(counts.sum()) == mask.size
    np.testing.assert_array_equal(decode_mask(counts, *mask.shape), mask)


@pytest.mark.parametrize("name", list(_cases()))
def test_pycocotools_decodes_our_counts(name: str) -> None:
    mask = _cases()[name]
    h, w = mask.shape
    rle = coco_mask.frPyObjects({"size": [h, w], "counts": encode_mask(mask).tolist()}, h, w)
    np.testing.assert_array_equal(coco_mask.decode(rle).astype(bool), mask)
    assert coco_mask.area(rle) == mask.sum()


def test_runs_start_with_zeros() -> None:
    counts = encode_mask(np.ones((2, 2), bool))
    assert counts.tolist() == [0, 4]


def test_decode_rejects_counts_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="sum to 5"):
        decode_mask([2, 3], 2, 3)
    with pytest.raises(ValueError, match="non-negative"):
        decode_mask(np.array([-1, 7]), 2, 3)


def test_encode_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        encode_mask(np.zeros((2, 2, 2), bool))


def test_bbox() -> None:
    mask = np.zeros((10, 12), bool)
    mask[2:5, 7:11] = True
    assert mask_bbox(mask) == (7, 2, 4, 3)
    assert mask_bbox(np.zeros((3, 3), bool)) == (0, 0, 0, 0)
