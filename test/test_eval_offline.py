"""mobileinst-eval offline: the real engine and tracker (hand-weighted colour model, exported ONNX) on a
dataset and on bags made from it; report, results bag, score, sweep and compare."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from eval_colour_data import SIZE, make_colour_dataset
from oracle_model import export_oracle
from mobileinst_ros.data import bags
from mobileinst_ros.evaluation import cli
from mobileinst_ros.evaluation.results_bag import PREDICTIONS_TOPIC, read_results_bag


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval_offline")
    dataset = make_colour_dataset(root / "dataset", white_frame=3)
    bags.write_dataset_bag(dataset, root / "bag_mcap", storage="mcap")
    return {"model": export_oracle(root / "model", [SIZE]), "dataset": dataset, "bag": root / "bag_mcap"}


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_dataset_run_scores_the_known_answers_and_writes_the_report(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli.main(["--model", str(inputs["model"]), "--input", str(inputs["dataset"]), "--out", str(out),
                     "-T", "2", "--quiet"]) == 0
    summary = _metrics(out)
    # Frame 3 of video 0 makes the model output NaN: the tracker drops it, so both objects are missed there.
    assert summary["drops"] == {"frames": 12, "dropped": 1, "drop_rate": pytest.approx(1 / 12)}
    tracking = summary["tracking"]["overall"]
    assert tracking["IDSW"] == 0 and tracking["IDP"] == pytest.approx(1.0)
    assert tracking["DetA"] == pytest.approx(22 / 24)  # 22 of 24 objects found, all exactly
    # Video 0's tracks miss one of 6 frames: whole-track IoU 5/6, above 0.75 but below 0.85.
    accuracy = summary["accuracy"]
    assert accuracy["AP50"] == pytest.approx(1.0) and accuracy["AP75"] == pytest.approx(1.0)
    assert 0.7 < accuracy["AP"] < 0.95
    assert accuracy["per_class"]["blue"] == -1
    latency = summary["latency"]
    assert latency["total"]["count"] == 12 and latency["keyframe"]["count"] >= 4
    assert latency["non_keyframe"]["count"] >= 4 and "preprocess" in latency["stages"]
    for name in ("report.md", "latency_over_time.png", "latency_histogram.png", "ap_per_class.png"):
        assert (out / name).stat().st_size > 0
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    report = (out / "report.md").read_text()
    assert "| red |" in report and "dropped: 1" in report


def test_results_bag_scores_the_same_without_the_model(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli.main(["--model", str(inputs["model"]), "--input", str(inputs["dataset"]), "--out", str(out),
                     "--video-frames", "0", "--quiet"]) == 0
    topics = bags.bag_topics(out / "predictions_bag")
    assert topics[PREDICTIONS_TOPIC][1] == 11 and topics[bags.GT_TOPIC][1] == 12
    run = read_results_bag(out / "predictions_bag")
    assert [s.name for s in run.sequences] == ["colour0", "colour1"]
    assert run.info["keyframe_interval"] == 3 and run.info["mode"] == "offline"
    assert cli.main(["score", "--input", str(out / "predictions_bag"), "--out", str(tmp_path / "scored")]) == 0
    direct, scored = _metrics(out), _metrics(tmp_path / "scored")
    for key in ("AP", "AP50", "AP75", "AR1", "AR10"):
        assert scored["accuracy"][key] == pytest.approx(direct["accuracy"][key])
    assert scored["tracking"] == direct["tracking"]
    assert scored["drops"] == direct["drops"]


def test_bag_sweep_over_keyframe_intervals_and_compare(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert cli.main(["--model", str(inputs["model"]), "--input", str(inputs["bag"]), "--out", str(out),
                     "--keyframe-intervals", "1,3", "--video-frames", "4", "--bag-storage", "mcap", "--quiet"]) == 0
    t1, t3 = _metrics(out / "T1"), _metrics(out / "T3")
    assert t1["latency"]["non_keyframe"]["count"] == 0 and t3["latency"]["non_keyframe"]["count"] > 0
    # The bag keeps the dataset's videos as sequences (/ground_truth/sequence): same figures as the dataset.
    assert [f["sequence"] for f in t1["per_frame"]][5:7] == ["colour0", "colour1"]
    assert t3["tracking"]["overall"]["IDSW"] == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert sorted(sweep) == ["1", "3"] and (out / "t_sweep.png").stat().st_size > 0
    assert next((out / "T1" / "predictions_bag").glob("*.mcap"))
    assert cli.main(["compare", str(out / "T1"), str(out / "T3"), "--out", str(tmp_path / "c")]) == 0
    table = json.loads((tmp_path / "c" / "compare.json").read_text())["table"]
    assert table["AP"]["A"] == pytest.approx(t1["accuracy"]["AP"])
    assert table["AP"]["B"] == pytest.approx(t3["accuracy"]["AP"])
    assert table["latency p50 ms"]["B-A"] == pytest.approx(t3["latency"]["total"]["p50"] - t1["latency"]["total"]["p50"])
    assert "T=1" in (tmp_path / "c" / "compare.md").read_text()


def test_without_ground_truth_only_latency_and_drops(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "nogt"
    assert cli.main(["--model", str(inputs["model"]), "--input", str(inputs["bag"]), "--out", str(out), "--no-gt",
                     "--max-frames", "5", "--video-frames", "0", "--quiet"]) == 0
    summary = _metrics(out)
    assert "accuracy" not in summary and summary["drops"]["frames"] == 5
    assert "No ground truth" in (out / "report.md").read_text()
