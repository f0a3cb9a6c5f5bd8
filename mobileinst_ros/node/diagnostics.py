"""Frame counters and latency windows of the node, and their diagnostic_msgs/DiagnosticStatus.

The worker thread records, the diagnostics timer (in the executor's thread) reads: every access holds
``FrameStats``'s lock. Rates cover the interval since the previous report; latency percentiles cover
the last ``LATENCY_WINDOW`` processed frames; totals cover the whole activation.
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

__all__ = ["FrameStats", "Report", "SequenceGaps", "WarningLimiter", "LATENCY_WINDOW", "diagnostic_status"]

LATENCY_WINDOW = 200
# Processing "keeps up" while it drops at most this fraction of the camera's frames in an interval.
MAX_DROP_FRACTION = 0.05


@dataclass
class Report:
    """What one diagnostics message says; rates over ``interval_s``, percentiles in ms. ``input_fps``
    counts the camera's images (received or lost), ``drop_fraction`` those not processed."""

    interval_s: float
    input_fps: float
    output_fps: float
    drop_fraction: float
    latency_p50: float
    latency_p95: float
    model_p50: float
    age_p50: float
    age_p95: float
    counts: dict[str, int] = field(default_factory=dict)  # in this interval
    totals: dict[str, int] = field(default_factory=dict)  # since activation


class FrameStats:
    """Counters of images received, processed, dropped (replaced by a newer one before processing), lost
    (published but never received: DDS kept only the newest while the node was busy, or transport
    loss), rejected (not a camera frame) and failed (the model raised), and latency windows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(("received", "processed", "dropped", "lost", "rejected", "failed"), 0)
        self._marks = dict(self._totals)
        self._mark_time = time.monotonic()
        self._latency = deque(maxlen=LATENCY_WINDOW)  # image arrival -> InstanceArray published
        self._model = deque(maxlen=LATENCY_WINDOW)    # tracker.process alone
        self._age = deque(maxlen=LATENCY_WINDOW)      # image header stamp -> InstanceArray published

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key`` (received, dropped, lost, rejected or failed)."""
        with self._lock:
            self._totals[key] += n

    def processed(self, latency_ms: float, model_ms: float, age_ms: float | None) -> None:
        """One InstanceArray published; ``age_ms`` is None for an image without a stamp."""
        with self._lock:
            self._totals["processed"] += 1
            self._latency.append(latency_ms)
            self._model.append(model_ms)
            if age_ms is not None:
                self._age.append(age_ms)

    def report(self) -> Report:
        """Rates since the previous report (which this starts a new interval for) and current windows."""
        with self._lock:
            now = time.monotonic()
            interval = max(now - self._mark_time, 1e-9)
            delta = {key: self._totals[key] - self._marks[key] for key in self._totals}
            self._marks, self._mark_time = dict(self._totals), now
            latency, model, age = (np.asarray(w, float) for w in (self._latency, self._model, self._age))
            totals = dict(self._totals)

        def pct(values: np.ndarray, q: float) -> float:
            return float(np.percentile(values, q)) if values.size else float("nan")

        published = delta["received"] + delta["lost"]
        return Report(interval, published / interval, delta["processed"] / interval,
                      (delta["dropped"] + delta["lost"]) / published if published else 0.0,
                      pct(latency, 50), pct(latency, 95), pct(model, 50), pct(age, 50), pct(age, 95), delta, totals)


def diagnostic_status(name: str, report: Report, info: dict[str, str], image_topic: str) -> DiagnosticStatus:
    """The node's status: OK, or WARN when no image arrived in the interval, when processing cannot keep
    up with the camera (more than 5% of its frames dropped), or when images were rejected or failed in
    the interval."""
    level, message = DiagnosticStatus.OK, f"processing {report.output_fps:.1f} fps"
    if report.input_fps == 0.0:
        level, message = DiagnosticStatus.WARN, f"no images received on {image_topic} in {report.interval_s:.1f} s"
    elif report.drop_fraction > MAX_DROP_FRACTION:
        level = DiagnosticStatus.WARN
        message = (f"cannot keep up: camera {report.input_fps:.1f} fps, processed {report.output_fps:.1f} fps, "
                   f"{100 * report.drop_fraction:.0f}% of images dropped")
    values = {
        "input fps": f"{report.input_fps:.2f}",
        "output fps": f"{report.output_fps:.2f}",
        "drop rate": f"{report.drop_fraction:.3f}",
        "latency p50 ms": f"{report.latency_p50:.1f}",
        "latency p95 ms": f"{report.latency_p95:.1f}",
        "model p50 ms": f"{report.model_p50:.1f}",
        "stamp age p50 ms": f"{report.age_p50:.1f}",
        "stamp age p95 ms": f"{report.age_p95:.1f}",
        **{f"{key} total": str(value) for key, value in report.totals.items()},
        **info,
    }
    bad = report.counts.get("rejected", 0) + report.counts.get("failed", 0)
    if level == DiagnosticStatus.OK and bad:
        level, message = DiagnosticStatus.WARN, f"{message}; {bad} images rejected or failed (see the log)"
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id="cpu",
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


class SequenceGaps:
    """Images lost before the node, from the gaps in each publisher's sequence numbers (rclpy's
    MessageInfo); a publisher's first image only sets its baseline."""

    MAX_PUBLISHERS = 64

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def update(self, publisher: bytes | None, sequence: int | None) -> int:
        """How many images of ``publisher`` were skipped before this one (0 when unknown)."""
        if publisher is None or not sequence:
            return 0
        last = self._last.get(publisher)
        if last is None and len(self._last) >= self.MAX_PUBLISHERS:
            self._last.clear()
        self._last[publisher] = sequence
        return max(sequence - last - 1, 0) if last is not None else 0


class WarningLimiter:
    """At most one warning per kind of problem per ``period_s``; the next one says how many like it
    were held back. Problems are of one kind when their texts differ only in numbers, so a camera
    sending the same broken image at 30 Hz gives one line per period, and a new problem is not hidden."""

    MAX_KINDS = 100  # forget every kind past this many, so that odd texts cannot grow memory

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (time of its last warning, held back since)

    def text(self, problem: str) -> str | None:
        """The warning to log for ``problem`` now, or None to hold it back."""
        kind = re.sub(r"\d+", "#", problem)
        now = time.monotonic()
        last, held = self._kinds.get(kind, (-float("inf"), 0))
        if now - last < self.period_s:
            self._kinds[kind] = (last, held + 1)
            return None
        if len(self._kinds) >= self.MAX_KINDS:
            self._kinds.clear()
        self._kinds[kind] = (now, 0)
        return problem if not held else f"{problem} ({held} more like it in the last {self.period_s:.0f} s)"
