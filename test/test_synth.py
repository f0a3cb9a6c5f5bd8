"""mobileinst-synth: deterministic YouTube-VIS output whose masks are the visible objects."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mobileinst_ros.data import synth
from mobileinst_ros.data.synth_assets import CATEGORIES, make_object_template

SIZE = 96


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    args = ["--videos", "3", "--frames", "4", "--width", str(SIZE), "--height", str(SIZE), "--seed", "5",
            "--quiet"]
    assert synth.main(["--out", str(tmp_path / "a"), *args]) == 0
    assert synth.main(["--out", str(tmp_path / "b"), *args]) == 0
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 3 * 4 + 1
    assert a == b
    assert synth.main(["--out", str(tmp_path / "c"), *args[:-2], "6", "--quiet"]) == 0
    assert _files(tmp_path / "c")["annotations.json"] != a["annotations.json"]


def test_json_is_youtube_vis_with_compressed_rle(tmp_path: Path) -> None:
    path = synth.write_dataset(tmp_path, videos=2, frames=3, width=SIZE, height=80, seed=1, progress=False)
    data = json.loads(path.read_text())
    assert [c["name"] for c in data["categories"]] == list(CATEGORIES)
    assert data["annotations"], "two videos should hold at least one object"
    for video in data["videos"]:
        assert video["length"] == 3 == len(video["file_names"])
        for name in video["file_names"]:
            assert cv2.imread(str(tmp_path / "JPEGImages" / name)).shape == (80, SIZE, 3)
    for ann in data["annotations"]:
        assert len(ann["segmentations"]) == len(ann["areas"]) == len(ann["bboxes"]) == 3
        for rle, area, box in zip(ann["segmentations"], ann["areas"], ann["bboxes"]):
            if rle is None:
                assert area is None and box is None
                continue
            assert isinstance(rle["counts"], str) and rle["size"] == [80, SIZE]
            decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
            assert decoded.sum() == area > 0
            assert list(mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})) == box


def _boundary_contrast(frame: np.ndarray, mask: np.ndarray) -> float:
    """Mean gradient on the mask outline divided by the mean gradient of the whole frame."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    m = mask.astype(np.uint8)
    outline = (cv2.dilate(m, np.ones((3, 3), np.uint8)) - cv2.erode(m, np.ones((3, 3), np.uint8))) > 0
    return float(grad[outline].mean() / (grad.mean() + 1e-6))


def test_masks_follow_the_drawn_objects_and_never_overlap() -> None:
    ratios, shifted = [], []
    for index in range(4):
        video = synth.generate_video(seed=2, index=index, frames=3, width=SIZE, height=SIZE)
        for t, frame in enumerate(video.frames):
            masks = [m[t] for m in video.masks if m[t] is not None]
            if len(masks) > 1:
                assert np.sum(masks, axis=0).max() == 1, "visible masks must be disjoint"
            for mask in masks:
                if mask.sum() >= 60:
                    ratios.append(_boundary_contrast(frame, mask))
                    shifted.append(_boundary_contrast(frame, np.roll(mask, (7, 7), axis=(0, 1))))
    assert len(ratios) >= 5
    # Object outlines are image edges; the same masks moved off by 7 px are not.
    assert np.median(ratios) > 1.5
    assert np.median(ratios) > np.median(shifted) + 0.5


def _object(category: str, x: float, radius: float) -> synth._Object:
    texture, alpha = make_object_template(category, np.random.default_rng(0))
    zero = np.zeros(2)
    trajectory = synth._Trajectory(np.array([x, 32.0]), 0.0, zero, zero, 0.0, 0.0, radius, 0.0,
                                   (0.0, 0.0, 0.0))
    return synth._Object(CATEGORIES.index(category) + 1, texture, alpha, trajectory)


def test_occluded_object_gets_only_its_visible_pixels() -> None:
    back, front = _object("disc", 26.0, 16.0), _object("box", 40.0, 14.0)
    background = np.full((64, 64, 3), 128, np.uint8)
    light = (np.zeros(2), 0.0, 1.0)
    noise = np.zeros((64, 64, 1), np.float32)
    _, alone = synth._render_frame([back], 0, background, np.zeros(2), light, noise)
    _, both = synth._render_frame([back, front], 0, background, np.zeros(2), light, noise)
    full_back, visible_back, visible_front = alone[0], both[0], both[1]
    assert not (visible_back & visible_front).any()
    assert np.array_equal(visible_back | (full_back & visible_front), full_back)
    assert 0 < visible_back.sum() < full_back.sum() - 50
    _, hidden = synth._render_frame([_object("disc", 40.0, 5.0), front], 0, background, np.zeros(2),
                                    light, noise)
    assert hidden[0] is None, "an object fully behind another is absent (null), not an empty mask"


def test_objects_enter_and_leave_the_frame() -> None:
    entering = leaving = 0
    for index in range(8):
        video = synth.generate_video(seed=3, index=index, frames=8, width=SIZE, height=SIZE)
        for masks in video.masks:
            present = [m is not None for m in masks]
            first = present.index(True)
            last = len(present) - 1 - present[::-1].index(True)
            entering += first > 0
            leaving += last < len(present) - 1
    assert entering >= 1 and leaving >= 1


def test_cli_refuses_to_overwrite_and_bad_sizes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--out", str(tmp_path), "--videos", "1", "--frames", "2", "--width", "64", "--height", "64",
            "--quiet"]
    assert synth.main(args) == 0
    assert synth.main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert synth.main([*args, "--overwrite"]) == 0
    assert synth.main([*args, "--overwrite", "--width", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--width" in err
