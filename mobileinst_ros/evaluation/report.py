"""The figures of a run (``summarize``) and its report: metrics.json, report.md, plots, overlay video.

Plots (matplotlib, Agg): latency over time (keyframes marked), latency histogram, AP per class; for a
sweep over keyframe intervals, AP and latency against T. The overlay video draws the predictions on
the input frames with the node's own overlay (``mobileinst_ros/overlay.py``).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless back end)
from pycocotools import mask as mask_utils  # noqa: E402

from mobileinst_ros.evaluation import metrics  # noqa: E402
from mobileinst_ros.evaluation.records import RunRecord  # noqa: E402
from mobileinst_ros.evaluation.sources import Source  # noqa: E402

__all__ = ["summarize", "write_overlay_video", "write_report", "write_sweep_report"]


def summarize(run: RunRecord) -> dict:
    """Every figure of a run: info, drops, latency, and with ground truth YouTube-VIS AP and tracking."""
    summary: dict = {"info": run.info, "classes": run.class_names, "drops": metrics.drop_stats(run),
                     "latency": metrics.latency_stats(run)}
    if run.has_ground_truth:
        try:
            accuracy, tracking = metrics.vis_metrics(run), metrics.tracking_metrics(run)
        except ValueError as error:  # e.g. ground truth without a single object: report the rest
            summary["accuracy_unavailable"] = str(error)
        else:
            summary["accuracy"], summary["tracking"] = accuracy, tracking
            summary["agreement"] = metrics.agreement_metrics(run)
    summary["per_frame"] = [
        {"sequence": s.name, "stamp_ns": f.stamp_ns, "latency_ms": f.latency_ms, "is_keyframe": f.is_keyframe,
         "dropped": f.predictions is None, "end_to_end_ms": f.end_to_end_ms, "timings_ms": f.timings_ms}
        for s in run.sequences for f in s.frames]
    return summary


def _plot_latency(run: RunRecord, out: Path) -> list[str]:
    frames = run.frames()
    index = [i for i, f in enumerate(frames) if f.latency_ms is not None]
    if not index:
        return []
    values = [frames[i].latency_ms for i in index]
    keys = [i for i in index if frames[i].is_keyframe]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(index, values, lw=0.8, label="model + tracker")
    ax.scatter(keys, [frames[i].latency_ms for i in keys], s=8, c="tab:red", label="keyframe", zorder=3)
    e2e = [(i, f.end_to_end_ms) for i, f in enumerate(frames) if f.end_to_end_ms is not None]
    if e2e:
        ax.plot(*zip(*e2e), lw=0.8, label="end to end (live)")
    dropped = [i for i, f in enumerate(frames) if f.predictions is None]
    if dropped:
        ax.scatter(dropped, [0] * len(dropped), marker="x", c="k", s=12, label="dropped")
    ax.set(xlabel="frame", ylabel="ms", title="Latency per frame")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_over_time.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=40)
    stats = metrics.percentiles(values)
    for name, colour in (("p50", "k"), ("p95", "tab:orange"), ("p99", "tab:red")):
        ax.axvline(stats[name], c=colour, ls="--", lw=1, label=f"{name} {stats[name]:.1f} ms")
    ax.set(xlabel="ms", ylabel="frames", title="Latency histogram")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_histogram.png", dpi=110)
    plt.close(fig)
    return ["latency_over_time.png", "latency_histogram.png"]


def _plot_ap_per_class(per_class: dict[str, float], out: Path) -> list[str]:
    shown = {k: v for k, v in per_class.items() if v >= 0}
    if not shown:
        return []
    fig, ax = plt.subplots(figsize=(max(4, 0.7 * len(shown) + 2), 3.2))
    ax.bar(list(shown), [100 * v for v in shown.values()])
    ax.set(ylabel="AP (%)", ylim=(0, 100), title="AP per class")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out / "ap_per_class.png", dpi=110)
    plt.close(fig)
    return ["ap_per_class.png"]


def _fmt(value: object, percent: bool = False) -> str:
    if isinstance(value, float):
        return f"{100 * value:.1f}" if percent else f"{value:.1f}"
    return str(value)


def _latency_table(latency: dict) -> list[str]:
    rows = [("frame (model + tracker)", latency["total"]), ("keyframes", latency["keyframe"]),
            ("non-keyframes", latency["non_keyframe"]), ("end to end (live)", latency["end_to_end"])]
    rows += [(f"stage: {k}", v) for k, v in latency["stages"].items()]
    lines = ["| ms | p50 | p95 | p99 | mean | max | frames |", "|---|---|---|---|---|---|---|"]
    for name, s in rows:
        if s.get("count"):
            lines.append(f"| {name} | {s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | {s['mean']:.1f} | "
                         f"{s['max']:.1f} | {s['count']} |")
    return lines


def _markdown(summary: dict, plots: list[str], video: str | None) -> str:
    info, drops = summary["info"], summary["drops"]
    lines = ["# mobileinst-eval report", ""]
    lines += [f"- {k}: `{v}`" for k, v in info.items()]
    lines += [f"- frames: {drops['frames']}, dropped: {drops['dropped']} ({100 * drops['drop_rate']:.1f}%)", ""]
    if "accuracy" in summary:
        acc, trk = summary["accuracy"], summary["tracking"]["overall"]
        lines += ["## Accuracy", "",
                  "| AP | AP50 | AP75 | AR1 | AR10 | HOTA | DetA | AssA | IDF1 | IDSW | IDSW per 100 | MOTA |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|",
                  "| " + " | ".join(_fmt(acc[k], True) for k in ("AP", "AP50", "AP75", "AR1", "AR10")) + " | "
                  + " | ".join(_fmt(trk[k], True) for k in ("HOTA", "DetA", "AssA", "IDF1")) + f" | {trk['IDSW']} | "
                  + f"{trk['IDSW_per_100']:.2f} | " + _fmt(trk["MOTA"], True) + " |", "",
                  "YouTube-VIS AP (IoU over whole tracks, pycocotools; AR1/AR10 count tracks per sequence, and a "
                  "bag without /ground_truth/sequence is one sequence); HOTA/DetA/AssA/IDF1/IDSW/MOTA from "
                  "trackeval, per class then combined over all detections; IDSW per 100 ground-truth track-frames "
                  "(objects in frames). Percentages.", "",
                  "| class | AP | AP50 | HOTA | IDF1 | IDSW | track ids per ground-truth track |",
                  "|---|---|---|---|---|---|---|"]
        per_class_trk = summary["tracking"]["per_class"]
        agreement = summary["agreement"]
        for name, ap in acc["per_class"].items():
            t, ap50 = per_class_trk.get(name), acc["per_class_AP50"][name]
            ids = agreement["per_class"].get(name)
            lines.append(f"| {name} | {_fmt(ap, True) if ap >= 0 else '-'} | {_fmt(ap50, True) if ap50 >= 0 else '-'} | "
                         + (f"{_fmt(t['HOTA'], True)} | {_fmt(t['IDF1'], True)} | {t['IDSW']} |" if t else "- | - | - |")
                         + (f" {ids:.2f} |" if ids is not None else " - |"))
        ids = agreement["ids_per_gt_track"]
        lines += ["", f"Phantoms (predictions overlapping no ground-truth object by IoU {metrics.PHANTOM_IOU} or more): "
                  f"{agreement['phantoms_per_frame']:.2f} per frame. Distinct predicted track ids per ground-truth "
                  f"track: {'-' if ids is None else f'{ids:.2f}'} ({agreement['gt_tracks_matched']} of "
                  f"{agreement['gt_tracks']} ground-truth tracks matched at IoU 0.5).", ""]
    elif "accuracy_unavailable" in summary:
        lines += [f"Accuracy not scored: {summary['accuracy_unavailable']}", ""]
    else:
        lines += ["No ground truth: latency and drops only.", ""]
    lines += ["## Latency", "", *_latency_table(summary["latency"]), ""]
    lines += [f"![{p}]({p})" for p in plots]
    if video:
        lines += ["", f"Overlay video: [{video}]({video})"]
    return "\n".join(lines) + "\n"


def write_overlay_video(source: Source, run: RunRecord, path: Path, fps: float, max_frames: int) -> int:
    """Draw each recorded frame's predictions on the source images; return the frames written."""
    from mobileinst_ros.overlay import draw_overlay

    records = {(s.name, f.stamp_ns): f for s in run.sequences for f in s.frames}
    writer = None
    written = 0
    try:
        for name, frames in source.sequences():
            for frame in frames:
                record = records.get((name, frame.stamp_ns))
                if record is None:
                    continue
                dets = record.predictions or []
                image = draw_overlay(frame.rgb, [mask_utils.decode(d.rle).astype(bool) for d in dets],
                                     [d.track_id for d in dets],
                                     [f"{run.class_names[d.class_id]} {d.score:.2f}" for d in dets])
                text = "DROPPED" if record.predictions is None else (
                    f"{record.latency_ms:.0f} ms {'key' if record.is_keyframe else ''}")
                cv2.putText(image, f"{name} {text}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
                if writer is None:
                    size = (image.shape[1], image.shape[0])
                    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                    if not writer.isOpened():
                        raise OSError(f"{path}: OpenCV cannot write an mp4v video here")
                if (image.shape[1], image.shape[0]) != size:
                    image = cv2.resize(image, size)
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                written += 1
                if written >= max_frames:
                    return written
    finally:
        if writer is not None:
            writer.release()
    return written


def write_report(out: Path, run: RunRecord, source: Source | None = None, video_frames: int = 300,
                 fps: float = 10.0) -> dict:
    """metrics.json, report.md, the plots and (given the source) overlay.mp4 in ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(run)
    plots = _plot_latency(run, out)
    if "accuracy" in summary:
        plots += _plot_ap_per_class(summary["accuracy"]["per_class"], out)
    video = None
    if source is not None and video_frames > 0 and write_overlay_video(source, run, out / "overlay.mp4", fps,
                                                                       video_frames):
        video = "overlay.mp4"
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(_markdown(summary, plots, video))
    return summary


def _headline(summary: dict) -> dict:
    row = {"frame_p50_ms": summary["latency"]["total"].get("p50"),
           "frame_p95_ms": summary["latency"]["total"].get("p95"),
           "drop_rate": summary["drops"]["drop_rate"]}
    if "accuracy" in summary:
        row.update({k: summary["accuracy"][k] for k in ("AP", "AP50", "AP75")})
        row.update({k: summary["tracking"]["overall"][k] for k in ("HOTA", "IDF1", "IDSW", "IDSW_per_100")})
        row.update({k: summary["agreement"][k] for k in ("phantoms_per_frame", "ids_per_gt_track")})
    return row


def write_sweep_report(out: Path, runs: Iterable[tuple[int, dict]]) -> dict:
    """AP and latency against the keyframe interval T: sweep.json, sweep.md, t_sweep.png."""
    rows = {int(t): _headline(s) for t, s in runs}
    ts = sorted(rows)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(ts, [rows[t]["frame_p50_ms"] for t in ts], "o-", c="tab:blue", label="latency p50")
    ax.plot(ts, [rows[t]["frame_p95_ms"] for t in ts], "s--", c="tab:blue", label="latency p95")
    ax.set(xlabel="keyframe interval T", ylabel="ms per frame", xticks=ts)
    if all("AP" in rows[t] for t in ts):
        ax2 = ax.twinx()
        ax2.plot(ts, [100 * rows[t]["AP"] for t in ts], "o-", c="tab:red", label="AP")
        ax2.plot(ts, [100 * rows[t]["HOTA"] for t in ts], "^-", c="tab:green", label="HOTA")
        ax2.set_ylabel("%")
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Keyframe interval: accuracy against latency")
    fig.tight_layout()
    fig.savefig(out / "t_sweep.png", dpi=110)
    plt.close(fig)
    keys = list(rows[ts[0]])
    lines = ["# Keyframe interval sweep", "", "| T | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for t in ts:
        lines.append(f"| {t} | " + " | ".join(_fmt(rows[t][k], k in ("AP", "AP50", "AP75", "HOTA", "IDF1", "drop_rate"))
                                              if rows[t][k] is not None else "-" for k in keys) + " |")
    lines += ["", "![t_sweep.png](t_sweep.png)", ""] + [f"- T={t}: [T{t}/report.md](T{t}/report.md)" for t in ts]
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    (out / "sweep.json").write_text(json.dumps({str(t): rows[t] for t in ts}, indent=1))
    return rows
