"""``mobileinst-eval compare A B``: two runs side by side (T=1 vs T=3, FP32 vs INT8, two models).

A and B are result directories of ``mobileinst-eval`` (their metrics.json) or results bags (scored
again here, without the model). Writes compare.md, compare.json and two plots.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless back end)
import numpy as np  # noqa: E402

from mobileinst_ros.evaluation.report import summarize  # noqa: E402
from mobileinst_ros.evaluation.results_bag import read_results_bag  # noqa: E402
from mobileinst_ros.evaluation.sources import InputError  # noqa: E402

__all__ = ["compare", "load_summary"]

RESULTS_BAG = "predictions_bag"

# (label, path into the summary, shown as a percentage)
_ROWS = [
    ("AP", ("accuracy", "AP"), True), ("AP50", ("accuracy", "AP50"), True), ("AP75", ("accuracy", "AP75"), True),
    ("AR1", ("accuracy", "AR1"), True), ("AR10", ("accuracy", "AR10"), True),
    ("HOTA", ("tracking", "overall", "HOTA"), True), ("DetA", ("tracking", "overall", "DetA"), True),
    ("AssA", ("tracking", "overall", "AssA"), True), ("IDF1", ("tracking", "overall", "IDF1"), True),
    ("ID switches", ("tracking", "overall", "IDSW"), False),
    ("ID switches per 100 track-frames", ("tracking", "overall", "IDSW_per_100"), False),
    ("MOTA", ("tracking", "overall", "MOTA"), True),
    ("latency p50 ms", ("latency", "total", "p50"), False), ("latency p95 ms", ("latency", "total", "p95"), False),
    ("latency p99 ms", ("latency", "total", "p99"), False),
    ("keyframe p50 ms", ("latency", "keyframe", "p50"), False),
    ("non-keyframe p50 ms", ("latency", "non_keyframe", "p50"), False),
    ("end-to-end p50 ms", ("latency", "end_to_end", "p50"), False),
    ("frames", ("drops", "frames"), False), ("dropped", ("drops", "dropped"), False),
    ("drop rate", ("drops", "drop_rate"), True),
]


def load_summary(path: str | Path) -> dict:
    """The summary of a result directory (metrics.json) or of a results bag (scored now)."""
    path = Path(path)
    if (path / "metrics.json").is_file():
        try:
            return json.loads((path / "metrics.json").read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{path / 'metrics.json'}: not valid JSON ({error})") from None
    if (path / RESULTS_BAG).exists():
        path = path / RESULTS_BAG
    if not path.exists():
        raise InputError(f"{path}: no such result directory or results bag")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise InputError(f"{path}: neither a mobileinst-eval result directory (metrics.json) nor a results bag")
    return summarize(read_results_bag(path))


def _get(summary: dict, keys: tuple[str, ...]) -> float | None:
    value: object = summary
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, (int, float)) else None


def _cell(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{100 * value:.1f}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _label(summary: dict, fallback: str) -> str:
    info = summary.get("info", {})
    parts = [Path(str(info["model"])).name] if info.get("model") else []
    parts += [f"{info['precision']}"] if info.get("precision") else []
    parts += [f"T={info['keyframe_interval']}"] if info.get("keyframe_interval") else []
    parts += [info["mode"]] if info.get("mode") else []
    return " ".join(parts) or fallback


def _plots(a: dict, b: dict, labels: tuple[str, str], out: Path) -> list[str]:
    plots = []
    per_a = a.get("accuracy", {}).get("per_class", {})
    per_b = b.get("accuracy", {}).get("per_class", {})
    names = [n for n in per_a if per_a.get(n, -1) >= 0 or per_b.get(n, -1) >= 0]
    if names:
        x = np.arange(len(names))
        fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(names) + 2), 3.2))
        for k, (per, label) in enumerate(((per_a, labels[0]), (per_b, labels[1]))):
            ax.bar(x + (k - 0.5) * 0.4, [100 * max(per.get(n, 0), 0) for n in names], 0.4, label=label)
        ax.set(xticks=x, xticklabels=names, ylabel="AP (%)", ylim=(0, 100), title="AP per class")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "compare_ap_per_class.png", dpi=110)
        plt.close(fig)
        plots.append("compare_ap_per_class.png")
    lat = [[f["latency_ms"] for f in s.get("per_frame", []) if f.get("latency_ms") is not None] for s in (a, b)]
    if all(lat):
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        bins = np.linspace(min(map(min, lat)), max(map(max, lat)), 40)
        for values, label in zip(lat, labels):
            ax.hist(values, bins=bins, alpha=0.55, label=label)
        ax.set(xlabel="ms per frame", ylabel="frames", title="Latency")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "compare_latency.png", dpi=110)
        plt.close(fig)
        plots.append("compare_latency.png")
    return plots


def compare(a_path: str | Path, b_path: str | Path, out: str | Path) -> dict:
    """Write compare.md / compare.json / plots for runs A and B into ``out``; return the table."""
    a, b = load_summary(a_path), load_summary(b_path)
    labels = (f"A: {_label(a, str(a_path))}", f"B: {_label(b, str(b_path))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = {}
    lines = ["# mobileinst-eval compare", "", f"- A: `{a_path}` ({labels[0][3:]})", f"- B: `{b_path}` ({labels[1][3:]})"]
    if a.get("info", {}).get("input") != b.get("info", {}).get("input"):
        lines.append(f"- **the inputs differ**: A `{a.get('info', {}).get('input')}`, "
                     f"B `{b.get('info', {}).get('input')}`; the accuracy figures are not comparable")
    lines += ["", "| | A | B | B - A |", "|---|---|---|---|"]
    for name, keys, percent in _ROWS:
        va, vb = _get(a, keys), _get(b, keys)
        if va is None and vb is None:
            continue
        delta = vb - va if va is not None and vb is not None else None
        table[name] = {"A": va, "B": vb, "B-A": delta}
        sign = "+" if delta is not None and delta > 0 else ""
        lines.append(f"| {name} | {_cell(va, percent)} | {_cell(vb, percent)} | {sign}{_cell(delta, percent)} |")
    lines.append("")
    per_a = a.get("accuracy", {}).get("per_class", {})
    per_b = b.get("accuracy", {}).get("per_class", {})
    if per_a or per_b:
        lines += ["| class AP | A | B |", "|---|---|---|"]
        for name in sorted(set(per_a) | set(per_b)):
            pa, pb = per_a.get(name, -1), per_b.get(name, -1)
            lines.append(f"| {name} | {_cell(pa, True) if pa >= 0 else '-'} | {_cell(pb, True) if pb >= 0 else '-'} |")
            table[f"AP {name}"] = {"A": pa, "B": pb}
        lines.append("")
    lines += [f"![{p}]({p})" for p in _plots(a, b, labels, out)]
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    (out / "compare.json").write_text(json.dumps({"A": str(a_path), "B": str(b_path), "labels": labels,
                                                  "table": table}, indent=1))
    return table
