#!/usr/bin/env python3
"""Time training steps of one or more configurations, interleaved, and break one step down.

    .venv/bin/python scripts/profile_train_step.py --config config/train/shapes.yaml \
        --variant fp32:train.precision=fp32 --variant bf16:train.precision=bf16 --rounds 4 --steps 5

Each variant is the config with ``key=value`` overrides (dotted keys, YAML values: write 1.0e-3, not
1e-3, which YAML reads as a string; lists such as ``model.backbone.skip_blocks=[2, 7]`` are fine). The variants take
turns: ``--rounds`` rounds of ``--steps`` steps each (after ``--warmup`` untimed steps), so that load
from other jobs on a shared machine falls on all of them alike. A step is timed from asking the
loader for its batch to the end of the optimizer step (as ``mobileinst-train`` logs ``s_per_step``).
Prints the median s/step per variant, its ratio to the first variant, the main process's CPU seconds
per step (data workers not included: less sensitive to other jobs than wall time), the load average
seen, and with
``--breakdown`` a torch.profiler split of a few more steps per variant: data, network forward,
losses (matching inside), matching, backward, optimizer. ``--json`` writes everything to a file.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch

from mobileinst_ros.training.train import Trainer, build_trainer, load_config, override_config

SECTIONS = ("network", "losses", "matcher", "backward", "optimizer")


def _variant(base: dict, spec: str) -> tuple[str, dict]:
    name, _, overrides = spec.partition(":")
    cfg = base
    # commas inside values ("a.b=[1, 2]") stay: a new assignment starts only at ",key="
    for assignment in filter(None, re.split(r",(?=[\w.]+=)", overrides)):
        cfg = override_config(cfg, assignment)
    return name, cfg


class _Run:
    """One variant: its trainer and an endless stream of batches."""

    def __init__(self, name: str, cfg: dict, total_steps: int):
        self.name, self.cfg = name, cfg
        self.trainer: Trainer = build_trainer(cfg)
        self.trainer.train_mode()
        self.batches = iter(self.trainer.loader(0, total_steps))
        self.step_index = 0
        self.times: list[float] = []
        self.cpu_times: list[float] = []

    def step(self) -> tuple[float, float, float]:
        """One step -> (seconds waiting for data, seconds in total, CPU seconds of this process)."""
        cpu, tic = time.process_time(), time.perf_counter()
        batch = next(self.batches)
        got = time.perf_counter()
        self.trainer.step(batch, self.step_index)
        self.step_index += 1
        return got - tic, time.perf_counter() - tic, time.process_time() - cpu


def _breakdown(run: _Run, steps: int, ops: int = 0) -> dict[str, float]:
    """Mean ms per step of each section, from torch.profiler's record_function ranges (and the
    ``ops`` operators with the most self time printed)."""
    data = 0.0
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        tic = time.perf_counter()
        for _ in range(steps):
            data += run.step()[0]
        total = time.perf_counter() - tic
    averages = prof.key_averages()
    if ops:
        print(averages.table(sort_by="self_cpu_time_total", row_limit=ops))
    events = {e.key: e for e in averages}
    out = {"data": 1000 * data / steps}
    for name in SECTIONS:
        e = events.get(name)
        out[name] = (e.cpu_time_total / 1000 / steps) if e is not None else 0.0
    out["total (profiled)"] = 1000 * total / steps
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:key=value,key=value (none: the config as it is)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--breakdown", type=int, default=0, metavar="STEPS",
                        help="profile this many more steps per variant, section by section")
    parser.add_argument("--ops", type=int, default=0, help="with --breakdown: print the top operators")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    base = load_config(args.config)
    specs = args.variant or ["config:"]
    total = args.warmup + args.rounds * args.steps + args.breakdown
    runs = [_Run(*_variant(base, spec), total) for spec in specs]
    for run in runs:
        for _ in range(args.warmup):
            run.step()
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for run in runs:
            steps = [run.step() for _ in range(args.steps)]
            times = [s[1] for s in steps]
            run.times.extend(times)
            run.cpu_times.extend(s[2] for s in steps)
            print(f"round {r + 1} {run.name}: {statistics.median(times):.3f} s/step", flush=True)
        loads.append(os.getloadavg()[0])
    report: dict = {"config": str(args.config), "batch_size": base["train"]["batch_size"],
                    "threads": base["train"]["threads"], "load_avg_1min": loads, "variants": {}}
    ref = statistics.median(runs[0].times)
    print(f"\nload average (1 min) during the rounds: {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} cores")
    for run in runs:
        med = statistics.median(run.times)
        cpu = statistics.median(run.cpu_times)
        report["variants"][run.name] = {"s_per_step_median": med, "s_per_step": run.times,
                                        "cpu_s_per_step_median": cpu, "ratio_to_first": med / ref,
                                        "spec": specs[runs.index(run)]}
        print(f"{run.name:>16}: median {med:.3f} s/step  (min {min(run.times):.3f}, max {max(run.times):.3f}), "
              f"x{ref / med:.2f} steps/hour vs {runs[0].name}; main process CPU {cpu:.2f} s/step")
    if args.breakdown:
        print("\nms per step (torch.profiler; nested: losses include matcher)")
        print(f"{'':>16} " + " ".join(f"{k:>9}" for k in ("data", *SECTIONS, "total")))
        for run in runs:
            parts = _breakdown(run, args.breakdown, args.ops)
            report["variants"][run.name]["breakdown_ms"] = parts
            print(f"{run.name:>16} " + " ".join(f"{v:9.0f}" for v in parts.values()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
