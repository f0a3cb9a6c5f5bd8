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
        "data": {"train": {"json": str(ann)}, "val": {"json": str(ann)}, "crop_size": [128, 128]},  # x6 of one
        # frame at 64 px is 1x1: BatchNorm in the feature-reuse pass (one frame per clip pair) needs more
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
    # a checkpoint validated at its own step carries that AP, beside the run's best so far (the model card's)
    assert last["val_ap"] == val[0]["AP"] == last["best_ap"]

    assert main(["--config", str(cfg), "--steps", "3"]) == 0  # resumes from last.pt
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps.count(3) >= 1 and steps.count(1) == 1  # step 1 is not trained twice
    final = torch.load(run / "final.pt", weights_only=False)
    # the last step validates, so final.pt carries its own AP
    assert final["step"] == 3 and records[-1]["type"] == "val" and final["val_ap"] == records[-1]["AP"]


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


def test_fine_tune_from_another_runs_weights(tmp_path, capsys):
    """--init-from: the weights of another run (the class head too where its shape fits), a new schedule from step
    0 and a best.pt of its own; --set overrides one config value."""
    ann = write_tiny_ytvis(tmp_path / "data", videos=1, frames=3)
    base = write_config(tmp_path, ann)
    assert main(["--config", str(base)]) == 0
    source = torch.load(tmp_path / "run" / "final.pt", weights_only=False)

    tune = write_config(tmp_path, ann, steps=1, val_every=100)
    out = tmp_path / "tuned"
    assert main(["--config", str(tune), "--out-dir", str(out), "--init-from", str(tmp_path / "run" / "final.pt"),
                 "--set", "train.lr=1.0e-9", "--set", "train.weight_decay=0.0"]) == 0
    tuned = torch.load(out / "final.pt", weights_only=False)
    assert tuned["step"] == 1 and tuned["config"]["train"]["lr"] == 1e-9
    assert tuned["config"]["train"]["init_from"] == str(tmp_path / "run" / "final.pt")
    # with lr 1e-9 one step moves nothing measurable: the weights are the source's (BatchNorm statistics aside)
    for name, value in source["model"].items():
        if value.is_floating_point() and "running" not in name:
            assert torch.allclose(tuned["model"][name], value, atol=1e-6), name

    assert main(["--config", str(tune), "--out-dir", str(tmp_path / "bad"), "--set", "train.lr"]) == 2
    assert "expected key=value" in capsys.readouterr().err
    assert main(["--config", str(tune), "--out-dir", str(tmp_path / "bad"), "--set", "train.lrr=1"]) == 2
    assert "train.lrr" in capsys.readouterr().err
    assert main(["--config", str(tune), "--out-dir", str(tmp_path / "bad"), "--init-from", str(tmp_path / "no.pt")]) == 2
    assert "no.pt: checkpoint not found" in capsys.readouterr().err


def test_frozen_precision_needs_a_frozen_prefix(tmp_path, capsys):
    ann = write_tiny_ytvis(tmp_path / "data", videos=1, frames=2)
    cfg = write_config(tmp_path, ann, frozen_precision="bf16")
    assert main(["--config", str(cfg)]) == 2
    assert "train.frozen_precision: bf16 needs a frozen prefix" in capsys.readouterr().err
    cfg = write_config(tmp_path, ann, frozen_precision="fp16")
    assert main(["--config", str(cfg)]) == 2
    assert "train.frozen_precision must be auto, fp32 or bf16" in capsys.readouterr().err


def test_auto_frozen_precision_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    from mobileinst_ros.training.train import _frozen_precision

    cpu = torch.device("cpu")
    for native, want in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert _frozen_precision("auto", cpu, has_prefix=True) == want
        assert _frozen_precision("auto", cpu, has_prefix=False) == "fp32"  # nothing frozen to run in bf16
        assert _frozen_precision("fp32", cpu, has_prefix=True) == "fp32"  # an explicit choice stands


def test_the_shipped_default_model_is_a_fine_tuning_start(tmp_path, caplog):
    """models/default/weights.pt fits config/train/real.yaml's network: every tensor loads (two classes, as
    person and car), and a fine-tuning run starts from it."""
    ann = write_tiny_ytvis(tmp_path / "data", videos=1, frames=3)
    cfg = yaml.safe_load(write_config(tmp_path, ann, steps=1, val_every=100).read_text())
    cfg["model"] = yaml.safe_load(open("config/train/real.yaml"))["model"]
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with caplog.at_level("INFO", logger="mobileinst-train"):
        assert main(["--config", str(path), "--init-from", "models/default/weights.pt"]) == 0
    assert "kept their initialisation: none" in caplog.text
