"""mobileinst-eval live: a short bag played at its rate through real ROS topics into mobileinst_node (its
own process, the exported colour model), the node's output recorded and scored."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from eval_colour_data import SIZE, make_colour_dataset
from oracle_model import export_oracle
from mobileinst_ros.data import bags
from mobileinst_ros.evaluation import cli
from mobileinst_ros.evaluation.live import LiveError, run_live
from mobileinst_ros.evaluation.results_bag import read_results_bag
from mobileinst_ros.evaluation.sources import open_source


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval_live")
    dataset = make_colour_dataset(root / "dataset")
    bags.write_dataset_bag(dataset, root / "bag")
    return {"model": export_oracle(root / "model", [SIZE]), "bag": root / "bag"}


def test_live_run_records_the_nodes_output_with_latency(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "live"
    assert cli.main(["--model", str(inputs["model"]), "--input", str(inputs["bag"]), "--out", str(out), "--mode", "live",
                     "-T", "2", "--domain-id", os.environ["ROS_DOMAIN_ID"], "--video-frames", "0", "--quiet"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["info"]["mode"] == "live" and summary["info"]["ros_domain_id"] == int(os.environ["ROS_DOMAIN_ID"])
    drops = summary["drops"]
    # The colour model takes a few ms per 10 Hz frame: the node keeps up, at most a frame lost to start-up.
    assert drops["frames"] == 12 and drops["dropped"] <= 1
    e2e, model = summary["latency"]["end_to_end"], summary["latency"]["total"]
    assert e2e["count"] == 12 - drops["dropped"] and e2e["p50"] >= model["p50"] > 0
    assert summary["latency"]["keyframe"]["count"] >= 5 and summary["latency"]["non_keyframe"]["count"] >= 4
    assert summary["tracking"]["overall"]["IDSW"] == 0 and summary["tracking"]["overall"]["IDP"] == pytest.approx(1.0)
    assert summary["accuracy"]["AP50"] == pytest.approx(1.0)
    recorded = bags.bag_topics(out / "live_recording")
    assert recorded["/mobileinst/instances"][1] == 12 - drops["dropped"]
    rescored = read_results_bag(out / "predictions_bag")
    assert sum(f.predictions is None for f in rescored.frames()) == drops["dropped"]
    assert "active" in (out / "node.log").read_text()


def test_a_node_that_cannot_start_is_reported_with_its_reason(inputs: dict, tmp_path: Path) -> None:
    source = open_source(inputs["bag"], ["red", "green", "blue"])
    info = {"keyframe_interval": 1}
    with pytest.raises(LiveError, match=r"mobileinst_node exited with status 1: .*no_such_model"):
        run_live(source, tmp_path / "no_such_model", info, tmp_path / "out",
                 domain_id=int(os.environ["ROS_DOMAIN_ID"]), progress=False)
