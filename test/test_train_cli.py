"""mobileinst-train end to end on tiny data: outputs, validation, resume, and one-line errors."""
import json

import torch
import yaml

from mobileinst_ros.training.train import main
from tiny_ytvis import write_tiny_ytvis

torch.set_num_threads(1)


def write_config(tmp_path, ann, **train):
    cfg = {
        "out_dir": str(tmp_path / "run"),
        "model": {"backbone": {"pretrained": False}, "instance_decoder": {"num_queries": 8}},
        "data": {"train": {"json": str(ann)}, "val": {"json": str(ann)}, "crop_size": [64, 64]},
        "train": {"steps": 2, "batch_size": 1, "threads": 1, "log_every": 1, "val_every": 2, "warmup_steps": 1,
                  "checkpoint_every_s": 0, **train},
        "val": {"input_size": [64, 64], "max_videos": 1},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_validate_checkpoint_and_resume(tmp_path, caplog):
    ann = write_tiny_ytvis(tmp_path / "data", videos=1, frames=3)
    cfg = write_config(tmp_path, ann)
    assert main(["--config", str(cfg)]) == 0
    run = tmp_path / "run"
    for name in ("last.pt", "final.pt", "best.pt", "metrics.jsonl", "loss.png", "config.yaml"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "train"] == [1, 2]
    val = [r for r in records if r["type"] == "val"]
    assert len(val) == 1 and 0.0 <= val[0]["AP"] <= 1.0 and set(val[0]["per_class"]) == {"red", "green"}
    last = torch.load(run / "last.pt", weights_only=False)
    assert last["step"] == 2 and "optimizer" in last and last["classes"] == ["red", "green"]

    assert main(["--config", str(cfg), "--steps", "3"]) == 0  # resumes from last.pt
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(3) >= 1 and steps.count(1) == 1  # step 1 is not trained twice
    assert torch.load(run / "final.pt", weights_only=False)["step"] == 3


def test_errors_are_one_line(tmp_path, capsys):
    ann = write_tiny_ytvis(tmp_path / "data", videos=1, frames=2)
    cfg = write_config(tmp_path, ann)
    text = cfg.read_text().replace("crop_size", "crop_sise")
    cfg.write_text(text)
    assert main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mobileinst-train: error:") and "crop_sise" in err and "\n" not in err

    cfg = write_config(tmp_path, tmp_path / "missing.json")
    assert main(["--config", str(cfg)]) == 2
    assert "missing.json: annotation file not found" in capsys.readouterr().err
