"""Copy-paste augmentation: pasted masks are exactly the pasted pixels, objects move, backgrounds keep their
labels minus what is covered, the same seed gives the same videos; merge keeps everything readable."""
import json
from pathlib import Path

import numpy as np
import pytest

from autolabel_scene import red_detector_spec, red_disc_frames, write_video
from mobileinst_ros.autolabel.cli import main
from mobileinst_ros.autolabel.copy_paste import _paste
from mobileinst_ros.data.ytvis import load_ytvis


def test_paste_returns_exactly_the_changed_pixels() -> None:
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 100, (60, 80, 3), dtype=np.uint8)
    before = canvas.copy()
    crop = np.full((20, 10, 3), 250, np.uint8)
    mask = np.zeros((20, 10), bool)
    mask[2:18, 1:9] = True
    for center in ((40, 30), (2, 2), (79, 59)):  # inside, and cut by the frame's corners
        canvas = before.copy()
        pasted = _paste(canvas, crop, mask, np.array(center, float), 30.0, flip=True)
        changed = np.any(canvas != before, axis=2)
        assert pasted.any() and np.array_equal(changed, pasted)
        assert np.all(canvas[pasted] == 250)


@pytest.fixture()
def labelled(tmp_path: Path) -> Path:
    """A labelled dataset of the red disc video (the real label command with the tiny teacher)."""
    red_detector_spec(tmp_path)
    spec = red_detector_spec(tmp_path, file=str(tmp_path / "red.onnx"))  # an absolute file needs no --teacher-dir
    frames, _ = red_disc_frames(8)
    video = write_video(tmp_path / "scene.avi", frames)
    out = tmp_path / "labelled"
    assert main(["label", "--teacher", str(spec), "--input", str(video),
                 "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet", "--min-length", "3"]) == 0
    return out


def _paste_cmd(labelled: Path, out: Path, seed: int = 3, *extra: str) -> int:
    return main(["paste", "--objects", str(labelled), "--backgrounds", str(labelled), "--out", str(out),
                 "--videos", "3", "--frames", "6", "--width", "96", "--height", "72", "--objects-per-video", "2-2",
                 "--min-object-area", "100", "--seed", str(seed), "--quiet", *extra])


def _pasted_heights(out: Path) -> np.ndarray:
    data = json.loads((out / "annotations.json").read_text())
    return np.array([b[3] for a in data["annotations"] if a["mask_method"] == "paste" for b in a["bboxes"] if b])


def test_object_scale_sets_the_pasted_sizes(labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Longer side of a pasted object = a fraction of the frame's height (72 px here), within --object-scale
    (and the clip's slow growth); a range that is not MIN-MAX stops with the flag named, nothing written."""
    assert _paste_cmd(labelled, tmp_path / "small", 3, "--object-scale", "0.1-0.15") == 0
    assert _paste_cmd(labelled, tmp_path / "large", 3, "--object-scale", "0.5-0.6") == 0
    small, large = _pasted_heights(tmp_path / "small"), _pasted_heights(tmp_path / "large")
    assert len(small) and len(large)
    assert small.max() <= 0.15 * 72 * 1.2 + 1 and large.max() > 0.4 * 72 and np.median(small) < np.median(large) / 2
    capsys.readouterr()
    assert _paste_cmd(labelled, tmp_path / "bad", 3, "--object-scale", "0.6-0.2") == 2
    assert "--object-scale must be MIN-MAX" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_pasted_videos_move_and_are_deterministic(labelled: Path, tmp_path: Path) -> None:
    assert _paste_cmd(labelled, tmp_path / "p1") == 0
    assert _paste_cmd(labelled, tmp_path / "p2") == 0
    assert _paste_cmd(labelled, tmp_path / "p3", seed=4) == 0
    data = [json.loads((tmp_path / p / "annotations.json").read_text()) for p in ("p1", "p2", "p3")]
    assert data[0]["annotations"] == data[1]["annotations"] and data[0]["annotations"] != data[2]["annotations"]
    dataset = load_ytvis(tmp_path / "p1")
    assert len(dataset.videos) == 3 and all(v.length == 6 and (v.width, v.height) == (96, 72) for v in dataset.videos)
    methods = [m for a in data[0]["annotations"] for m in a["mask_methods"] if m]
    assert {"paste", "grabcut"} <= set(methods)
    moves = []
    for v, video in enumerate(dataset.videos):
        pasted = [a for a in data[0]["annotations"] if a["video_id"] == video.id and a["mask_method"] == "paste"]
        assert pasted
        for ann in pasted:
            centres = np.array([(b[0] + b[2] / 2, b[1] + b[3] / 2) for b in ann["bboxes"] if b is not None])
            moves.append(np.abs(centres - centres[0]).max())
        # Masks of one frame never overlap: a pasted object covers what lies behind it.
        for t in range(video.length):
            _, _, masks = dataset.targets(v, t)
            assert masks.sum(axis=0).max() <= 1
    assert max(moves) > 3  # objects travel along their paths


def test_pasted_pixels_show_the_object(labelled: Path, tmp_path: Path) -> None:
    """The disc is red: inside every pasted mask the frame is red (JPEG blurs only a rim)."""
    assert _paste_cmd(labelled, tmp_path / "p") == 0
    dataset = load_ytvis(tmp_path / "p")
    data = json.loads((tmp_path / "p" / "annotations.json").read_text())
    pasted_ids = {a["id"] for a in data["annotations"] if a["mask_method"] == "paste"}
    reds = []
    for v, video in enumerate(dataset.videos):
        for t in range(video.length):
            rgb = dataset.frame(v, t).astype(int)
            ids, _, masks = dataset.targets(v, t)
            for i, mask in zip(ids, masks):
                if int(i) in pasted_ids and mask.sum() > 40:
                    inside = rgb[mask.astype(bool)]
                    reds.append(np.mean(inside[:, 0] - np.maximum(inside[:, 1], inside[:, 2]) > 80))
    assert reds and np.mean(reds) > 0.85


def test_merge_and_paste_errors(labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _paste_cmd(labelled, tmp_path / "p") == 0
    assert main(["merge", "--out", str(tmp_path / "m"), "--quiet", str(labelled), str(tmp_path / "p")]) == 0
    merged = load_ytvis(tmp_path / "m")
    assert len(merged.videos) == 1 + 3 and merged.classes == ["disc"]
    capsys.readouterr()
    assert main(["merge", "--out", str(tmp_path / "m2"), "--quiet", str(labelled), str(labelled)]) == 2
    assert "is also in an earlier input" in capsys.readouterr().err and not (tmp_path / "m2").exists()
    assert main(["paste", "--objects", str(labelled), "--backgrounds", str(labelled), "--out", str(tmp_path / "q"),
                 "--classes", "person", "--quiet"]) == 2
    assert "no object to paste" in capsys.readouterr().err
