"""Loss and validation curves from ``metrics.jsonl`` to a PNG (matplotlib, no display needed)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_metrics"]

LOSS_KEYS = ("total", "main", "aux", "temporal", "reuse")


def plot_metrics(jsonl: Path, png: Path) -> None:
    """Training losses (log scale) and validation AP/AP50 against step; nothing to plot -> no file."""
    if not Path(jsonl).is_file():
        return
    records = [json.loads(line) for line in Path(jsonl).read_text().splitlines() if line.strip()]
    train = [r for r in records if r.get("type") == "train"]
    val = [r for r in records if r.get("type") == "val"]
    if not train:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in LOSS_KEYS:
        points = [(r["step"], r[key]) for r in train if r.get(key, 0) > 0]
        if points:
            axes[0].plot(*zip(*points), label=key)
    axes[0].set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    axes[0].legend()
    for key in ("AP", "AP50"):
        if val:
            axes[1].plot([r["step"] for r in val], [r[key] for r in val], marker="o", label=key)
    axes[1].set(xlabel="step", ylabel="YouTube-VIS AP", ylim=(0, 1), title="validation (held-out videos)")
    if val:
        axes[1].legend()
    fig.tight_layout()
    tmp = Path(png).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(png)
