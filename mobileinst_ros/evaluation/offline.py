"""Offline mode: the engine and tracker on every frame of the input, one after the other, on this CPU.

Exact (no frame is ever skipped) and as fast as the CPU allows; the latencies are the tracker's own
per-frame timings. The tracker starts afresh on every dataset video (track ids are then offset so that
they stay unique over the run) and runs through a bag as one stream.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from tqdm import tqdm

from mobileinst_ros.evaluation.records import Detection, FrameRecord, RunRecord, SequenceRecord, compress_mask
from mobileinst_ros.evaluation.sources import Source
from mobileinst_ros.messages.instances import InstanceLike

__all__ = ["FrameProcessor", "run_offline"]


class _Frame(Protocol):
    instances: list[InstanceLike]
    is_keyframe: bool
    latency_ms: float
    timings_ms: dict[str, float]
    dropped: bool


class FrameProcessor(Protocol):
    """What tracking.tracker.KernelTracker offers: ``process(rgb) -> TrackedFrame`` and ``reset()``."""

    def process(self, image: np.ndarray) -> _Frame: ...

    def reset(self) -> None: ...


def _record(stamp: int, gt: list[Detection] | None, out: _Frame, id_offset: int) -> FrameRecord:
    predictions = None if out.dropped else [
        # float32 as in the published message, so a results bag scores exactly like this run (score ties)
        Detection(int(i.track_id) + id_offset, int(i.class_id), float(np.float32(i.score)), compress_mask(i.mask))
        for i in out.instances]
    keyframe = None if out.dropped else bool(out.is_keyframe)
    return FrameRecord(stamp, gt, predictions, float(out.latency_ms), dict(out.timings_ms), keyframe)


def run_offline(source: Source, tracker: FrameProcessor, info: dict, progress: bool = True,
                max_frames: int | None = None) -> RunRecord:
    """Process every frame of ``source`` (at most ``max_frames``) and record what came out."""
    run = RunRecord(list(source.class_names), [], dict(info, mode="offline"))
    total = source.frame_count if max_frames is None else min(max_frames, source.frame_count)
    id_offset = max_id = done = 0
    with tqdm(total=total, desc="offline", unit="frame", disable=not progress) as bar:
        for name, frames in source.sequences():
            if done >= total:
                break
            if source.reset_between_sequences:
                tracker.reset()
                id_offset = max_id
            sequence: SequenceRecord | None = None
            for frame in frames:
                if sequence is None:
                    sequence = SequenceRecord(name, frame.rgb.shape[0], frame.rgb.shape[1])
                    run.sequences.append(sequence)
                record = _record(frame.stamp_ns, frame.ground_truth, tracker.process(frame.rgb), id_offset)
                sequence.frames.append(record)
                max_id = max([max_id, *(d.track_id for d in record.predictions or [])])
                done += 1
                bar.update()
                if done >= total:
                    break
    return run
