"""Depth fusion (geometry/depth_fusion.py, messages/images.py) on synthetic depth where the answer is
known: objects at known places, with sensor noise, holes (0 / NaN) and masks that spill onto the
background; the 3D position is within 2% of the distance. Bad depth never raises past its checks."""
import threading
import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from mobileinst_ros.geometry.depth_fusion import (MAX_SAMPLES, DepthFrame, DepthPairing, Intrinsics, PositionStatus,
                                                  depth_to_metres, locate_instances)
from mobileinst_ros.messages.images import ImageConversionError, camera_info_intrinsics, depth_image_array

WIDTH, HEIGHT = 640, 480
K = Intrinsics(525.0, 525.0, 319.5, 239.5, WIDTH, HEIGHT)
BACKGROUND_M = 6.0


def _box(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[top:bottom, left:right] = True
    return mask


def _points(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The exact 3D points (3, N) of the noiseless depth under a mask."""
    rows, cols = np.nonzero(mask)
    z = depth[rows, cols]
    return np.stack([(cols - K.cx) * z / K.fx, (rows - K.cy) * z / K.fy, z])


def _sensor(depth: np.ndarray, rng: np.random.Generator, holes: float = 0.2) -> np.ndarray:
    """Noise growing with distance (1%), and holes where the sensor saw nothing, as a 16UC1 camera gives."""
    noisy = depth * (1 + 0.01 * rng.standard_normal(depth.shape))
    millimetres = np.round(noisy * 1000).astype(np.uint16)
    millimetres[rng.random(depth.shape) < holes] = 0
    return millimetres


def _spill(mask: np.ndarray, pixels: int = 4) -> np.ndarray:
    """The mask grown by ``pixels``: a segmentation whose edge lies on the background."""
    grown = mask.copy()
    rows, cols = np.nonzero(mask)
    grown[max(rows.min() - pixels, 0):rows.max() + pixels + 1, max(cols.min() - pixels, 0):cols.max() + pixels + 1] = True
    return grown


def test_objects_in_front_of_a_wall_are_located_within_2_percent() -> None:
    rng = np.random.default_rng(0)
    depth = np.full((HEIGHT, WIDTH), BACKGROUND_M)
    near = _box(100, 80, 220, 200)                      # a box face 1.5 m away, left of centre
    depth[near] = 1.5
    tilted = _box(250, 350, 400, 560)                   # a board leaning away: 2.5 m -> 3.5 m left to right
    cols = np.arange(WIDTH)[None, :].repeat(HEIGHT, 0)
    depth[tilted] = (2.5 + (cols - 350) / 210)[tilted]
    far = _box(40, 420, 90, 470)                        # a small object 4.5 m away
    depth[far] = 4.5
    truths = [_points(depth, m).mean(axis=1) for m in (near, tilted, far)]
    masks = [_spill(m) for m in (near, tilted, far)]
    raw = _sensor(depth, rng)

    positions = locate_instances(raw, K, masks)

    for where, truth, mask in zip(positions, truths, (near, tilted, far)):
        assert where.status == PositionStatus.OK
        error = np.linalg.norm(np.subtract(where.position, truth))
        distance = np.linalg.norm(truth)
        assert error <= 0.02 * distance, (where.position, truth, error / distance)
        assert where.distance == pytest.approx(np.linalg.norm(where.position), rel=1e-6)
        assert min(0.5 * mask.sum(), 0.5 * MAX_SAMPLES) < where.pixels <= min(mask.sum(), MAX_SAMPLES)
    # Extent: 90% (5th-95th percentile) of the box face's 120 x 120 pixels at 1.5 m, flat in z.
    side = 120 * 1.5 / K.fx
    assert positions[0].extent[0] == pytest.approx(0.9 * side, rel=0.1)
    assert positions[0].extent[1] == pytest.approx(0.9 * side, rel=0.1)
    assert positions[0].extent[2] < 0.1


def test_masks_at_colour_resolution_over_a_smaller_depth_image() -> None:
    rng = np.random.default_rng(1)
    depth = np.full((HEIGHT, WIDTH), BACKGROUND_M)
    obj = _box(200, 300, 300, 420)
    depth[obj] = 2.0
    truth = _points(depth, obj).mean(axis=1)
    colour_mask = np.repeat(np.repeat(obj, 2, axis=0), 2, axis=1)  # the colour camera at 1280x960
    (where,) = locate_instances(_sensor(depth, rng), K, [colour_mask])
    assert np.linalg.norm(np.subtract(where.position, truth)) <= 0.02 * np.linalg.norm(truth)


def test_no_valid_depth_is_flagged_never_raised() -> None:
    depth = np.full((HEIGHT, WIDTH), 2.0, np.float32)
    depth[:, :100] = np.nan                      # a hole
    depth[:, 100:200] = 0.0                      # zeros
    depth[:, 200:220] = -1.0                     # nonsense
    depth[:, 220:230] = np.inf
    masks = [_box(10, 10, 100, 90), _box(10, 110, 100, 190), _box(10, 200, 100, 230), np.zeros((HEIGHT, WIDTH), bool),
             _box(10, 300, 12, 302), _box(10, 95, 100, 300)]
    positions = locate_instances(depth, K, masks)
    assert [p.status for p in positions[:5]] == [PositionStatus.NO_VALID_DEPTH] * 5
    assert all(p.position == (0.0, 0.0, 0.0) and p.distance == 0.0 for p in positions[:5])
    assert positions[5].status == PositionStatus.OK and positions[5].position[2] == pytest.approx(2.0)


def test_intrinsics_for_another_size_are_refused() -> None:
    with pytest.raises(ValueError, match="camera info is for 320x240"):
        locate_instances(np.ones((HEIGHT, WIDTH), np.float32), Intrinsics(525, 525, 160, 120, 320, 240), [])


def _depth_msg(values: np.ndarray, encoding: str, big_endian: bool = False, padding: int = 0) -> Image:
    dtype = values.dtype.newbyteorder(">" if big_endian else "<")
    rows = values.astype(dtype).view(np.uint8).reshape(values.shape[0], -1)
    rows = np.concatenate([rows, np.full((rows.shape[0], padding), 0xAB, np.uint8)], axis=1)
    return Image(height=values.shape[0], width=values.shape[1], encoding=encoding, is_bigendian=big_endian,
                 step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize("big_endian", [False, True])
def test_depth_images_honour_encoding_step_and_endianness(big_endian: bool) -> None:
    millimetres = np.array([[0, 1000, 2500], [65535, 1, 300]], np.uint16)
    got = depth_to_metres(depth_image_array(_depth_msg(millimetres, "16UC1", big_endian, padding=6)))
    expected = np.array([[np.nan, 1.0, 2.5], [65.535, 0.001, 0.3]], np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    metres = np.array([[np.nan, 1.25, np.inf], [-1.0, 0.0, 3.5]], np.float32)
    got = depth_to_metres(depth_image_array(_depth_msg(metres, "32FC1", big_endian, padding=4)))
    np.testing.assert_array_equal(got, np.array([[np.nan, 1.25, np.nan], [np.nan, np.nan, 3.5]], np.float32))


def test_malformed_depth_and_camera_info_raise_their_own_errors() -> None:
    good = _depth_msg(np.ones((4, 6), np.uint16), "16UC1")
    truncated = Image(height=4, width=6, encoding="16UC1", step=12, data=bytes(good.data)[:30])
    for bad, text in ((Image(height=4, width=6, encoding="rgb8", step=18, data=bytes(72)), "depth encoding 'rgb8'"),
                      (truncated, "truncated"), (Image(height=0, width=0, encoding="32FC1"), "empty")):
        with pytest.raises(ImageConversionError, match=text):
            depth_image_array(bad)
    info = CameraInfo(width=6, height=4)
    with pytest.raises(ValueError, match="uncalibrated"):
        camera_info_intrinsics(info)  # k all zero
    info.k = [500.0, 0, 3, 0, 500.0, 2, 0, 0, 1]
    assert camera_info_intrinsics(info) == Intrinsics(500.0, 500.0, 3.0, 2.0, 6, 4)
    info.k[2] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        camera_info_intrinsics(info)


def _frame(stamp_ns: int) -> DepthFrame:
    return DepthFrame(stamp_ns, np.zeros((1, 1), np.float32), Intrinsics(1, 1, 0, 0, 1, 1))


def test_pairing_takes_the_nearest_depth_within_the_slop_and_waits_for_a_late_one() -> None:
    pairing = DepthPairing(capacity=3)
    for stamp in (1_000_000_000, 1_033_000_000, 1_066_000_000, 1_100_000_000):
        pairing.add(_frame(stamp))
    assert pairing.pair(1_060_000_000, slop_s=0.01).stamp_ns == 1_066_000_000
    assert pairing.pair(1_000_000_000, slop_s=0.01) is None, "evicted: only the newest 3 are kept"
    assert pairing.pair(1_200_000_000, slop_s=0.05) is None, "too far"
    started = time.monotonic()
    assert pairing.pair(1_200_000_000, slop_s=0.05, wait_s=0.05) is None
    assert time.monotonic() - started >= 0.04, "the depth stream is behind: waited"
    threading.Timer(0.05, pairing.add, args=(_frame(1_233_000_000),)).start()
    assert pairing.pair(1_233_000_000, slop_s=0.01, wait_s=2.0).stamp_ns == 1_233_000_000
    started = time.monotonic()
    assert pairing.pair(1_210_000_000, slop_s=0.001, wait_s=2.0) is None
    assert time.monotonic() - started < 0.5, "a newer depth frame exists: no waiting"
    started = time.monotonic()
    assert pairing.pair(9_000_000_000, slop_s=0.05, wait_s=2.0) is None
    assert time.monotonic() - started < 0.5, "the depth stream stopped long ago: no waiting"
