"""Box-seeded GrabCut masks measured against exact ground truth (mobileinst-synth videos): better than the
box or its inscribed ellipse."""
import json
from pathlib import Path

from mobileinst_ros.autolabel.cli import main
from mobileinst_ros.data.synth import write_dataset


def test_grabcut_beats_the_baselines_on_exact_ground_truth(tmp_path: Path) -> None:
    write_dataset(tmp_path / "ds", videos=3, frames=2, width=192, height=144, seed=7, progress=False)
    assert main(["mask-quality", "--dataset", str(tmp_path / "ds"), "--json", str(tmp_path / "q.json"),
                 "--quiet"]) == 0
    result = json.loads((tmp_path / "q.json").read_text())
    assert result["objects"] >= 10
    assert result["mean_iou"] > 0.7
    assert result["mean_iou"] > result["baselines"]["inscribed_ellipse"] + 0.1
    assert result["by_method"]["grabcut"]["objects"] > result["objects"] / 2
