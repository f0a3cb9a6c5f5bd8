"""mobileinst-eval on bad input: one line on stderr naming what is wrong, exit status 1, no traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from eval_colour_data import SIZE, make_colour_dataset
from oracle_model import export_oracle
from mobileinst_ros.data import bags
from mobileinst_ros.evaluation import cli


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval_errors")
    dataset = make_colour_dataset(root / "dataset", videos=1, frames=2)
    bags.write_dataset_bag(dataset, root / "bag")
    return {"root": root, "model": export_oracle(root / "model", [SIZE]), "dataset": dataset, "bag": root / "bag"}


def _fails(capsys: pytest.CaptureFixture, argv: list[str], *fragments: str) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mobileinst-eval: error: ") and "\n" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _run(inputs: dict, source: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(inputs["model"]), "--input", str(source), "--out", str(tmp_path / "out"),
            "--quiet", *extra]


def test_bag_without_the_image_topic(inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, _run(inputs, inputs["bag"], tmp_path, "--image-topic", "/camera/color/image_raw"),
           "no image topic /camera/color/image_raw", "/camera/image_raw [sensor_msgs/msg/Image]")


def test_wrong_message_types(inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, _run(inputs, inputs["bag"], tmp_path, "--image-topic", bags.GT_TOPIC),
           f"{bags.GT_TOPIC} holds mobileinst_ros/msg/InstanceArray, expected sensor_msgs/msg/Image")
    _fails(capsys, _run(inputs, inputs["bag"], tmp_path, "--gt-topic", bags.IMAGE_TOPIC),
           f"ground-truth topic {bags.IMAGE_TOPIC} holds sensor_msgs/msg/Image")


def test_empty_and_truncated_bags(inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with bags.BagWriter(tmp_path / "empty"):
        pass
    _fails(capsys, _run(inputs, tmp_path / "empty", tmp_path), "empty")
    truncated = tmp_path / "truncated"
    with bags.BagWriter(truncated, "mcap") as bag:
        for stamp, topic, msg in bags.read_messages(inputs["bag"], {bags.IMAGE_TOPIC: bags.IMAGE_TYPE}):
            bag.write(topic, msg, stamp)
    data = truncated / "truncated.mcap"
    data.write_bytes(data.read_bytes()[: data.stat().st_size * 2 // 3])
    _fails(capsys, _run(inputs, truncated, tmp_path), str(truncated), "truncated")


def test_ground_truth_with_unknown_classes(inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = make_colour_dataset(tmp_path / "purple", videos=1, frames=2, categories=["red", "purple", "blue"])
    _fails(capsys, _run(inputs, dataset, tmp_path), "ground truth has classes the model does not know: purple")
    bags.write_dataset_bag(dataset, tmp_path / "purple_bag")
    _fails(capsys, _run(inputs, tmp_path / "purple_bag", tmp_path), "purple_bag", "does not know: purple")


def test_missing_model_existing_results_and_unknown_paths(inputs: dict, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    argv = _run(inputs, inputs["bag"], tmp_path)
    argv[argv.index("--model") + 1] = str(tmp_path / "no_model")
    _fails(capsys, argv, "no_model")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.json").write_text("{}")
    _fails(capsys, _run(inputs, inputs["bag"], tmp_path), "already holds results")
    _fails(capsys, _run(inputs, inputs["root"], tmp_path / "x"), "neither a rosbag2 bag", "nor a YouTube-VIS dataset")
    _fails(capsys, _run(inputs, inputs["bag"], tmp_path / "y", "--mode", "live", "--whole-non-keyframes"),
           "--whole-non-keyframes is for offline mode")
    _fails(capsys, ["compare", str(tmp_path / "a"), str(tmp_path / "b")], "no such result directory")
    _fails(capsys, ["score", "--input", str(inputs["bag"]), "--out", str(tmp_path / "s")],
           "no topic /mobileinst/instances")
