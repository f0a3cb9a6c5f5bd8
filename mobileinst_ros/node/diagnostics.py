"""Frame counters and latency windows of the node, and their diagnostic_msgs/DiagnosticStatus.

The worker thread records, the diagnostics timer (in the executor's thread) reads: every access holds
``FrameStats``'s lock. Rates cover the interval since the previous report; latency percentiles cover
the last ``LATENCY_WINDOW`` processed frames; totals cover the whole activation.

Two kinds of loss are told apart, so that a warning blames the right side: images *dropped* by the
node (replaced in its one-slot mailbox by a newer one before it got to them: the node cannot keep up)
and images *lost* before the node received them (gaps in the publisher's sequence numbers: transport
loss, e.g. a camera driver without the Fast DDS profile). The camera's rate is its publishers'
sequence numbers over the time they took to arrive, so a burst of loss revealed late does not inflate it.
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

__all__ = ["FrameStats", "Report", "WarningLimiter", "LATENCY_WINDOW", "diagnostic_status"]

LATENCY_WINDOW = 200
# Processing "keeps up" while it drops at most this fraction of the images it receives in an interval;
# the transport is fine while at most this fraction of the camera's images never arrive.
MAX_DROP_FRACTION = 0.05
MAX_LOSS_FRACTION = 0.05
MAX_PUBLISHERS = 64  # forget every publisher past this many (a camera driver restarting gets a new one)


@dataclass
class Report:
    """What one diagnostics message says; rates over ``interval_s``, percentiles in ms. ``camera_fps``
    is the rate the camera published at (NaN until a publisher has sent two images), ``received_fps`` what reached the node, ``output_fps`` what it
    processed; ``drop_fraction`` is of the received images, ``loss_fraction`` of the published ones."""

    interval_s: float
    camera_fps: float
    received_fps: float
    output_fps: float
    drop_fraction: float
    loss_fraction: float
    latency_p50: float
    latency_p95: float
    model_p50: float
    age_p50: float
    age_p95: float
    counts: dict[str, int] = field(default_factory=dict)  # in this interval
    totals: dict[str, int] = field(default_factory=dict)  # since activation


@dataclass
class _Publisher:
    """One publisher's latest sequence number and arrival time, and those at the previous report."""

    base_sequence: int
    base_time: float
    sequence: int
    time: float


class FrameStats:
    """Counters of images received, processed, dropped (replaced by a newer one before processing), lost
    (published but never received, from sequence gaps), rejected (not a camera frame) and failed (the
    model raised), the camera's rate, and latency windows. ``clock`` gives monotonic seconds."""

    COUNTERS = ("received", "processed", "dropped", "lost", "rejected", "failed")
    # With depth fusion: images given depth, images with none paired, bad depth images and camera infos.
    DEPTH_COUNTERS = ("depth fused", "depth missing", "depth rejected", "camera info rejected")

    def __init__(self, clock: Callable[[], float] = time.monotonic, depth: bool = False) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._totals = dict.fromkeys(self.COUNTERS + (self.DEPTH_COUNTERS if depth else ()), 0)
        self._marks = dict(self._totals)
        self._mark_time = clock()
        self._publishers: dict[bytes, _Publisher] = {}
        self._latency = deque(maxlen=LATENCY_WINDOW)  # image arrival -> InstanceArray published
        self._model = deque(maxlen=LATENCY_WINDOW)    # tracker.process alone
        self._age = deque(maxlen=LATENCY_WINDOW)      # image header stamp -> InstanceArray published

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key`` (dropped, rejected, failed or a depth counter)."""
        with self._lock:
            self._totals[key] += n

    def received(self, publisher: bytes | None, sequence: int | None) -> None:
        """An image arrived from ``publisher`` (its gid) with its publication sequence number; images the
        sequence skipped are counted as lost. Without either (an RMW that gives none), arrivals are
        numbered here: the camera's rate is then the received rate and nothing counts as lost."""
        now = self._clock()
        with self._lock:
            self._totals["received"] += 1
            if publisher is None or not sequence:
                publisher, sequence = b"", self._publishers[b""].sequence + 1 if b"" in self._publishers else 1
            known = self._publishers.get(publisher)
            if known is None or sequence <= known.sequence:  # new, or restarted: a baseline only
                if known is None and len(self._publishers) >= MAX_PUBLISHERS:
                    self._publishers.clear()
                self._publishers[publisher] = _Publisher(sequence, now, sequence, now)
                return
            self._totals["lost"] += sequence - known.sequence - 1
            known.sequence, known.time = sequence, now

    def _camera_fps(self) -> float | None:
        """Images published per second since the previous report, summed over publishers (None: no
        publisher sent two images yet); moves each publisher's baseline to now. Holds the lock."""
        rate = None
        for p in self._publishers.values():
            if p.time > p.base_time:
                rate = (rate or 0.0) + (p.sequence - p.base_sequence) / (p.time - p.base_time)
            p.base_sequence, p.base_time = p.sequence, p.time
        return rate

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
            now = self._clock()
            interval = max(now - self._mark_time, 1e-9)
            delta = {key: self._totals[key] - self._marks[key] for key in self._totals}
            self._marks, self._mark_time = dict(self._totals), now
            camera_fps = self._camera_fps()
            latency, model, age = (np.asarray(w, float) for w in (self._latency, self._model, self._age))
            totals = dict(self._totals)

        def pct(values: np.ndarray, q: float) -> float:
            return float(np.percentile(values, q)) if values.size else float("nan")

        received, published = delta["received"], delta["received"] + delta["lost"]
        return Report(interval, float("nan") if camera_fps is None else camera_fps, received / interval,
                      delta["processed"] / interval, delta["dropped"] / received if received else 0.0,
                      delta["lost"] / published if published else 0.0,
                      pct(latency, 50), pct(latency, 95), pct(model, 50), pct(age, 50), pct(age, 95), delta, totals)


def diagnostic_status(name: str, report: Report, info: dict[str, str], image_topic: str) -> DiagnosticStatus:
    """The node's status: OK, or WARN when no image arrived in the interval, when processing cannot keep
    up (more than 5% of the received images dropped), when the transport loses more than 5% of the
    camera's images before they reach the node, when more than 5% of the processed images found no depth
    image to fuse (depth fusion), or when images, depth images or camera infos were rejected or failed."""
    level, message = DiagnosticStatus.OK, f"processing {report.output_fps:.1f} fps"
    problems = []
    if report.received_fps == 0.0:
        problems.append(f"no images received on {image_topic} in {report.interval_s:.1f} s")
    if report.drop_fraction > MAX_DROP_FRACTION:
        problems.append(f"cannot keep up: received {report.received_fps:.1f} fps, processed "
                        f"{report.output_fps:.1f} fps, {100 * report.drop_fraction:.0f}% of received images dropped")
    if report.loss_fraction > MAX_LOSS_FRACTION:
        problems.append(f"{100 * report.loss_fraction:.0f}% of the camera's images lost before reaching the node "
                        f"(camera {report.camera_fps:.1f} fps, received {report.received_fps:.1f} fps): transport "
                        f"loss; give the camera driver the same Fast DDS profile or use reliable QoS")
    processed, missing = report.counts.get("processed", 0), report.counts.get("depth missing", 0)
    if processed and missing > MAX_DROP_FRACTION * processed:
        problems.append(f"no depth image within depth_slop for {100 * missing / processed:.0f}% of the images")
    if problems:
        level, message = DiagnosticStatus.WARN, "; ".join(problems)
    values = {
        "camera fps": f"{report.camera_fps:.2f}",
        "received fps": f"{report.received_fps:.2f}",
        "output fps": f"{report.output_fps:.2f}",
        "drop rate": f"{report.drop_fraction:.3f}",
        "loss rate": f"{report.loss_fraction:.3f}",
        "latency p50 ms": f"{report.latency_p50:.1f}",
        "latency p95 ms": f"{report.latency_p95:.1f}",
        "model p50 ms": f"{report.model_p50:.1f}",
        "stamp age p50 ms": f"{report.age_p50:.1f}",
        "stamp age p95 ms": f"{report.age_p95:.1f}",
        **{f"{key} total": str(value) for key, value in report.totals.items()},
        **info,
    }
    bad = sum(report.counts.get(key, 0) for key in ("rejected", "failed", "depth rejected", "camera info rejected"))
    if level == DiagnosticStatus.OK and bad:
        level, message = DiagnosticStatus.WARN, f"{message}; {bad} inputs rejected or failed (see the log)"
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id="cpu",
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


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
