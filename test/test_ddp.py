"""DistributedDataParallel smoke test: 2 CPU processes (gloo) under torchrun train a few steps."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from mobileinst_ros.training.train import _IndexSampler
from tiny_ytvis import write_tiny_ytvis

WORKER = textwrap.dedent("""
    import os, sys, torch
    import torch.distributed as dist
    from mobileinst_ros.training.train import DEFAULT_CONFIG, train
    from mobileinst_ros.model.mobileinst import merge_config

    out = sys.argv[2]
    cfg = merge_config(DEFAULT_CONFIG, {
        "out_dir": out,
        "model": {"backbone": {"pretrained": False}, "instance_decoder": {"num_queries": 8}},
        "data": {"train": {"json": sys.argv[1]}, "crop_size": [64, 64]},
        "train": {"steps": 3, "batch_size": 2, "threads": 1, "log_every": 1, "warmup_steps": 1,
                  "checkpoint_every_s": 1000, "lr": 1e-3},
    })
    torch.manual_seed(123)  # same initial weights on both ranks before DDP's broadcast too

    import gc
    from torch.nn.parallel import DistributedDataParallel
    destroy = dist.destroy_process_group
    def destroy_after_ddp(*args, **kwargs):
        # DDP (its Reducer) freed after the group can deadlock in the group's destructor: train() frees it first
        assert not any(isinstance(o, DistributedDataParallel) for o in gc.get_objects()), "DDP still alive"
        destroy(*args, **kwargs)
    dist.destroy_process_group = destroy_after_ddp
    model, _ = train(cfg, resume="none")
    assert dist.is_available() and not dist.is_initialized()  # cleaned up
    torch.save(model.state_dict(), os.path.join(out, f"rank{os.environ['RANK']}.pt"))
    print("backend ok", os.environ["WORLD_SIZE"])
""")


def test_index_sampler_gives_ranks_disjoint_samples():
    a = list(_IndexSampler(0, 3, batch=2, rank=0, world=2))
    b = list(_IndexSampler(0, 3, batch=2, rank=1, world=2))
    assert not set(a) & set(b) and len(a) == len(b) == 6
    assert list(_IndexSampler(2, 3, batch=2, rank=0, world=2)) == a[4:]  # resume continues the stream


def test_two_cpu_processes_train_in_sync(tmp_path):
    ann = write_tiny_ytvis(tmp_path / "data", videos=2, frames=3)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         str(ann), str(out)],
        capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("backend ok 2") == 2
    rank0, rank1 = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]) or "running" in key or "num_batches" in key, key
    final = torch.load(out / "final.pt", weights_only=False)
    assert final["step"] == 3 and final["classes"] == ["red", "green"]
    metrics = (out / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 3  # rank 0 logs, once per step


def _tiny_config(tmp_path, ann, name: str = "run") -> str:
    import yaml

    cfg = {"out_dir": str(tmp_path / name),
           "model": {"backbone": {"pretrained": False}, "instance_decoder": {"num_queries": 8}},
           "data": {"train": {"json": str(ann)}, "crop_size": [64, 64]},
           "train": {"steps": 3, "batch_size": 4, "threads": 2, "log_every": 1, "warmup_steps": 1,
                     "checkpoint_every_s": 1000}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _train(tmp_path, ann, name: str, *options: str) -> list[dict]:
    """mobileinst-train on the tiny config -> its per-step records."""
    proc = subprocess.run([sys.executable, "-m", "mobileinst_ros.training.train", "--config",
                           _tiny_config(tmp_path, ann, name), "--resume", "none", *options],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]


def test_processes_share_the_batch_and_train_as_one(tmp_path):
    ann = write_tiny_ytvis(tmp_path / "data", videos=2, frames=3)
    two = _train(tmp_path, ann, "two", "--processes", "2")
    config = __import__("yaml").safe_load((tmp_path / "two" / "config.yaml").read_text())
    assert config["train"]["batch_size"] == 2 and config["train"]["threads"] == 1  # the global batch stays 4
    assert torch.load(tmp_path / "two" / "final.pt", weights_only=False)["step"] == 3
    one = _train(tmp_path, ann, "one", "--steps", "1")
    # the same clip pairs, BatchNorm over all of them, losses normalised by the whole batch's count, the whole
    # batch's losses logged: the first step's losses are one process's up to float rounding (per-process
    # BatchNorm alone moves them by ~0.5-3%; one process at 1 thread instead of 2 by ~0.01-0.03%)
    for key in ("total", "main", "aux", "temporal"):
        assert two[0][key] == pytest.approx(one[0][key], rel=1e-3), key


def test_processes_that_do_not_divide_the_batch_are_refused(tmp_path, capsys):
    from mobileinst_ros.training.train import main

    ann = write_tiny_ytvis(tmp_path / "data", videos=1, frames=3)
    assert main(["--config", _tiny_config(tmp_path, ann), "--processes", "3"]) == 2
    assert "--processes 3 must divide train.batch_size 4" in capsys.readouterr().err
    assert main(["--config", _tiny_config(tmp_path, ann), "--processes", "0"]) == 2
    assert not (tmp_path / "run").exists()
