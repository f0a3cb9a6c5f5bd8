"""mobileinst-autolabel label end to end with a real (tiny) ONNX teacher: video file, image folder and rosbag
inputs give a YouTube-VIS dataset load_ytvis reads; reruns resume from the cache; bad input is named."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from autolabel_scene import red_detector_spec, red_disc_frames, write_video
from mobileinst_ros.autolabel.cli import main
from mobileinst_ros.data import bags
from mobileinst_ros.data.ytvis import load_ytvis


def _label(tmp_path: Path, inputs: list[Path], out: Path, *extra: str) -> int:
    spec = red_detector_spec(tmp_path)
    return main(["label", "--teacher", str(spec), "--teacher-dir", str(tmp_path / "none"), "--input",
                 *map(str, inputs), "--out", str(out), "--cache", str(tmp_path / "cache"), "--min-length", "3",
                 "--quiet", *extra])


@pytest.fixture()
def teacher_dir(tmp_path: Path) -> Path:
    """The spec names red.onnx relative to --teacher-dir/<name>/: put the file there."""
    red_detector_spec(tmp_path)
    (tmp_path / "none" / "red").mkdir(parents=True)
    (tmp_path / "none" / "red" / "red.onnx").write_bytes((tmp_path / "red.onnx").read_bytes())
    return tmp_path


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_video_to_dataset_that_load_ytvis_reads(teacher_dir: Path, capsys: pytest.CaptureFixture) -> None:
    tmp_path = teacher_dir
    frames, masks = red_disc_frames(8)
    video = write_video(tmp_path / "walk.avi", frames)
    out = tmp_path / "ds"
    assert _label(tmp_path, [video], out, "--width", "64") == 0
    summary = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert summary["frames"] == 8 and summary["tracks"] == {"disc": 1} and summary["cached_frames"] == 0
    dataset = load_ytvis(out)
    assert dataset.classes == ["disc"] and len(dataset.videos) == 1
    (video_entry,) = dataset.videos
    assert (video_entry.width, video_entry.height, video_entry.length) == (64, 48, 8)
    for t in range(8):
        (inst,) = dataset.frame_instances(0, t)
        truth = cv2.resize(masks[t].astype(np.uint8), (64, 48), interpolation=cv2.INTER_AREA) > 0
        assert _iou(inst.mask, truth) > 0.7
    data = json.loads((out / "annotations.json").read_text())
    (ann,) = data["annotations"]
    assert ann["mask_method"] == "grabcut" and len(ann["mask_methods"]) == 8 and ann["teacher"] == "red"
    assert data["info"]["teacher"]["licence"] == "test" and not list(tmp_path.glob("ds.partial-*"))


def test_rerun_resumes_from_the_cache_and_is_deterministic(teacher_dir: Path, capsys: pytest.CaptureFixture) -> None:
    tmp_path = teacher_dir
    frames, _ = red_disc_frames(6)
    folder = tmp_path / "images"
    folder.mkdir()
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:03d}.png"), frame[..., ::-1])
    assert _label(tmp_path, [folder], tmp_path / "a") == 0
    capsys.readouterr()
    assert _label(tmp_path, [folder], tmp_path / "b") == 0
    summary = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert summary["cached_frames"] == 6 and summary["cached_mask_frames"] == 6
    first, second = (json.loads((tmp_path / d / "annotations.json").read_text()) for d in "ab")
    assert first["annotations"] == second["annotations"] and first["videos"] == second["videos"]


def test_rosbag_input_and_a_bag_without_the_topic(teacher_dir: Path, capsys: pytest.CaptureFixture) -> None:
    tmp_path = teacher_dir
    frames, _ = red_disc_frames(5)
    bag = tmp_path / "bag"
    with bags.BagWriter(bag) as writer:
        for t, frame in enumerate(frames):
            writer.write("/cam/image", bags.image_message(frame, 10**9 * (t + 1)), 10**9 * (t + 1))
    assert _label(tmp_path, [bag], tmp_path / "from_bag", "--topic", "/cam/image") == 0
    assert load_ytvis(tmp_path / "from_bag").videos[0].length == 5
    capsys.readouterr()
    assert _label(tmp_path, [bag], tmp_path / "nope", "--topic", "/camera/image_raw") == 2
    err = capsys.readouterr().err
    assert "no topic /camera/image_raw; the bag has: /cam/image [sensor_msgs/msg/Image]" in err
    assert not (tmp_path / "nope").exists() and not list(tmp_path.glob("nope.partial-*"))
    assert _label(tmp_path, [bag], tmp_path / "nope") == 2
    assert "a rosbag input needs --topic" in capsys.readouterr().err


def test_bad_inputs_are_named_and_nothing_is_left_half_written(teacher_dir: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    tmp_path = teacher_dir
    frames, _ = red_disc_frames(3)
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "000.png"), frames[0][..., ::-1])
    (folder / "001.png").write_bytes(b"\x89PNG truncated")
    assert _label(tmp_path, [folder], tmp_path / "out") == 2
    assert "001.png: cannot read the image" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial-*"))
    (tmp_path / "clip.avi").write_bytes(b"RIFF not really a video")
    assert _label(tmp_path, [tmp_path / "clip.avi"], tmp_path / "out") == 2
    assert "clip.avi: cannot open the video (damaged or an unknown format)" in capsys.readouterr().err
    assert _label(tmp_path, [tmp_path / "missing.mp4"], tmp_path / "out") == 2
    assert "missing.mp4: no such file or directory" in capsys.readouterr().err
    (tmp_path / "exists").mkdir()
    assert _label(tmp_path, [folder], tmp_path / "exists") == 2
    assert "exists already exists (pass --overwrite" in capsys.readouterr().err
