"""Training steps per hour of an older commit against this tree, same batch, taking turns so that other jobs on
the machine load both alike (docs/training.md, "Before / after").

    .venv/bin/python scripts/compare_train_throughput.py OLD_REV OLD_CONFIG NEW_CONFIG [--rounds 3] [--steps 15]
        [--new-processes 2]

OLD_CONFIG is a path inside OLD_REV's tree, NEW_CONFIG one in this tree. Each round runs ``mobileinst-train``
of the old checkout (a git worktree) and of this tree for ``--steps`` steps with validation off and a record
every 5 steps; the figure per run is the seconds between the step-5 and the last record divided by the steps
between them (start-up and the first steps excluded). Data paths in the configs are taken from this tree.
``--new-processes N`` runs this tree's training as ``mobileinst-train --processes N`` (the same global batch).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _config(src: Path, out_dir: Path, steps: int, dst: Path) -> None:
    cfg = yaml.safe_load(src.read_text())
    cfg["out_dir"] = str(out_dir)
    cfg["data"]["val"] = None
    cfg["data"]["train"]["json"] = str(ROOT / cfg["data"]["train"]["json"])
    cfg["train"].update(steps=steps, log_every=5)
    dst.write_text(yaml.safe_dump(cfg))


def _seconds_per_step(metrics: Path) -> float:
    times = {r["step"]: r["time"] for r in map(json.loads, metrics.read_text().splitlines()) if r["type"] == "train"}
    last = max(times)
    return (times[last] - times[5]) / (last - 5)


def _run(tree: Path, config: Path, out_dir: Path, processes: int = 1) -> float:
    extra = ["--processes", str(processes)] if processes > 1 else []
    subprocess.run([sys.executable, "-m", "mobileinst_ros.training.train", "--config", str(config), "--resume", "none",
                    *extra], cwd=tree, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(tree)})
    return _seconds_per_step(out_dir / "metrics.jsonl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old_rev")
    parser.add_argument("old_config", type=Path)
    parser.add_argument("new_config", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--new-processes", type=int, default=1, help="this tree's run as mobileinst-train --processes N")
    args = parser.parse_args()
    if args.steps <= 5:
        parser.error("--steps must be more than 5")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_tree = tmp / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.old_rev], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        try:
            _config(old_tree / args.old_config, tmp / "out_old", args.steps, tmp / "old.yaml")
            _config(ROOT / args.new_config, tmp / "out_new", args.steps, tmp / "new.yaml")
            times: dict[str, list[float]] = {"old": [], "new": []}
            for round_ in range(args.rounds):
                times["old"].append(_run(old_tree, tmp / "old.yaml", tmp / "out_old"))
                times["new"].append(_run(ROOT, tmp / "new.yaml", tmp / "out_new", args.new_processes))
                print(f"round {round_ + 1}: old {times['old'][-1]:.3f} s/step, new {times['new'][-1]:.3f} s/step, "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"median s/step: old {old:.3f}, new {new:.3f}: {old / new:.2f}x the steps per hour")
    return 0


if __name__ == "__main__":
    sys.exit(main())
