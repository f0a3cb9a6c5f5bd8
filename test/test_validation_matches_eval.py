"""Validation during training is mobileinst-eval: same AP on the same videos (torch engine vs the exported ONNX)."""
import json

import pytest
import torch

from mobileinst_ros.data.ytvis import load_ytvis
from mobileinst_ros.evaluation.cli import main as eval_main
from mobileinst_ros.export.export import export_model
from mobileinst_ros.model.mobileinst import merge_config
from mobileinst_ros.training.train import DEFAULT_CONFIG, train
from mobileinst_ros.training.validation import validate
from tiny_ytvis import write_tiny_ytvis


def test_validation_ap_equals_mobileinst_eval_ap(tmp_path):
    torch.manual_seed(0)
    data = write_tiny_ytvis(tmp_path / "data", videos=2, frames=5, size=96)
    val = {"input_size": [96, 96], "max_videos": None, "keyframe_interval": 2, "score_threshold": 0.05,
           "max_instances": 5, "mask_threshold": 0.5, "association_threshold": 0.5}
    cfg = merge_config(DEFAULT_CONFIG, {
        "out_dir": str(tmp_path / "run"),
        "model": {"backbone": {"pretrained": False}, "instance_decoder": {"num_queries": 8}},
        "data": {"train": {"json": str(data)}, "crop_size": [96, 96], "scale_range": [1.0, 1.0]},
        "train": {"steps": 60, "batch_size": 2, "threads": 1, "log_every": 20, "warmup_steps": 1, "lr": 2e-3,
                  "checkpoint_every_s": 1000},
        "val": val,
    })
    model, _ = train(cfg, resume="none")
    dataset = load_ytvis(data)
    # split_components is a validation key too (config/train/real.yaml validates as the model is exported)
    for split in (False, True):
        ours = validate(model, dataset, {**val, "split_components": split})
        assert ours["AP"] > 0.05, ours  # a model that finds something: the equality below means something
        model_dir, out = tmp_path / f"model_{split}", tmp_path / f"eval_{split}"
        export_model(model.eval(), dataset.classes, model_dir, [(96, 96)],
                     defaults={"score_threshold": 0.05, "mask_threshold": 0.5, "max_instances": 5,
                               "split_components": split})
        assert eval_main(["run", "--model", str(model_dir), "--input", str(data.parent), "--out", str(out),
                          "-T", "2", "--video-frames", "0", "--quiet"]) == 0
        theirs = json.loads((out / "metrics.json").read_text())
        assert ours["AP"] == pytest.approx(theirs["accuracy"]["AP"], abs=1e-3)
        assert ours["AP50"] == pytest.approx(theirs["accuracy"]["AP50"], abs=1e-3)
        assert ours["MOTA"] == pytest.approx(theirs["tracking"]["overall"]["MOTA"], abs=1e-3)
