"""scripts/class_probe.py: linear probes on features pooled under each object's mask, beside the model's class."""
import subprocess
import sys
from pathlib import Path

import torch

from mobileinst_ros.model import build_model
from tiny_ytvis import write_tiny_ytvis

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "class_probe.py"
TINY = {"backbone": {"pretrained": False}, "kernel_dim": 16, "mask_decoder": {"dim": 16, "coords": True},
        "instance_decoder": {"num_queries": 6, "local": "activation"}}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def _checkpoint(path: Path, classes: list[str]) -> Path:
    torch.manual_seed(0)
    model = build_model(TINY, len(classes))
    torch.save({"model": model.state_dict(), "config": {"model": TINY}, "classes": classes}, path)
    return path


def test_every_probe_scores_every_object_of_the_test_set(tmp_path: Path) -> None:
    fit = write_tiny_ytvis(tmp_path / "fit", videos=3, frames=2, seed=0)
    test = write_tiny_ytvis(tmp_path / "test", videos=1, frames=2, seed=1)
    done = _run(str(_checkpoint(tmp_path / "m.pt", ["red", "green"])), str(fit), str(test), "--every", "1",
                "--resolution", "64x64")
    assert done.returncode == 0, done.stderr
    assert "fitted on 12 object-frames" in done.stdout and "scored on 4" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| the model") or "probe on" in line]
    assert len(rows) == 7  # the model on all objects, on those it masks; five probes
    # the colour names the class: the probe on the stride-8 backbone features gets every object right
    cells = rows[3].split("|")[2:-1]  # per object size: "right% (objects)" or "-" where none
    assert rows[3].startswith("| probe on x3 |")
    assert all(cell.strip() == "-" or cell.strip().startswith("100%") for cell in cells)
    # the second row scores a subset: per size, never more objects than the first
    assert rows[1].startswith("| the model, objects it masks |")
    counts = [[int(c.split("(")[1].rstrip(") ")) if "(" in c else 0 for c in row.split("|")[2:-1]] for row in rows[:2]]
    assert all(masked <= every for masked, every in zip(counts[1], counts[0]))


def test_a_missing_checkpoint_or_other_classes_are_refused(tmp_path: Path) -> None:
    data = write_tiny_ytvis(tmp_path / "tiny", videos=1, frames=2)
    missing = _run(str(tmp_path / "nothing.pt"), str(data), str(data))
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr
    other = _run(str(_checkpoint(tmp_path / "m.pt", ["a", "b"])), str(data), str(data))
    assert other.returncode == 2 and "are not the model's" in other.stderr
