"""onnxruntime sessions as this package runs every graph (the model's, a teacher's, a peer's): on the CPU
provider, one operator at a time on ``threads`` intra-op threads, errors only in the log."""
from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def session_options(threads: int = 1) -> ort.SessionOptions:
    """Options for ``threads`` intra-op threads and no inter-op parallelism: the model is built for one core,
    and parallel branches would take cores a robot's other nodes need."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options


def cpu_session(path: str | Path, options: ort.SessionOptions | None = None) -> ort.InferenceSession:
    """A CPU session of the ONNX file ``path`` (``options`` default: ``session_options()``, one thread)."""
    return ort.InferenceSession(str(path), options or session_options(), providers=["CPUExecutionProvider"])
