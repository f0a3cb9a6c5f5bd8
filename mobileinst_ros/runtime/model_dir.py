"""The exported model directory: ``model.yaml`` + ONNX graphs + ``MODEL_CARD.md`` (no torch).

Layout (written by ``mobileinst-export``, INT8 graphs added by ``mobileinst-quantize``)::

    models/<name>/model.yaml
    models/<name>/{shallow,deep,mask_decoder,mask_decoder_reuse,instance_decoder}.onnx   FP32 (shared layout)
    models/<name>/int8/{...}.onnx                                      INT8 (optional)

The shared layout (free spatial axes) serves every listed resolution from one graph set; the
per-resolution layout puts fixed-shape sets under ``<W>x<H>/``. Each resolution names its own files.

``model.yaml``::

    format: mobileinst-onnx-2
    classes: [person, ...]
    normalisation: {mean: 127.0, scale: 128.0}      # inside the shallow graph: (rgb - mean) / scale
    mask_stride: 8
    kernel_dim: 128
    num_queries: 100
    location_terms: 5                               # optional (0): kernels end with a location prior
    defaults: {score_threshold: .., mask_threshold: .., max_instances: .., duplicate_iou: .., split_components: ..,
               resize: letterbox}
    resolutions:
      640x480: {fp32: {shallow: shallow.onnx, ...}, int8: {shallow: int8/shallow.onnx, ...}}

Every graph has batch 1 and the fixed tensor names of ``GRAPH_IO`` (plus ``OPTIONAL_INPUTS`` where the model
has them: x4 for a mask-pooled class); the shallow graph takes the
letterboxed RGB image as uint8 [1, h, w, 3]. A keyframe runs shallow, deep, mask_decoder (which also
outputs the ``MASK_CONTEXT``) and instance_decoder; a non-keyframe runs shallow and mask_decoder_reuse
on the keyframe's cached context. Format 1 took a normalised float image and had no mask_decoder_reuse
(its non-keyframes ran the whole mask decoder on the keyframe's x4, x5, x6).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["FORMAT", "GRAPHS", "GRAPH_IO", "OPTIONAL_INPUTS", "MASK_CONTEXT", "MODEL_DEFAULTS", "ModelLoadError",
           "ModelSpec", "load_spec", "parse_resolution", "expected_shapes"]

FORMAT = "mobileinst-onnx-2"
# The post-processing defaults mobileinst-export writes into model.yaml (its --score-threshold etc.);
# keys a model.yaml lacks take these. The node's parameters and the engine's arguments override them.
MODEL_DEFAULTS: dict[str, Any] = {"score_threshold": 0.3, "mask_threshold": 0.5, "max_instances": 10,
                                  "duplicate_iou": 0.5, "split_components": False, "resize": "letterbox"}
GRAPHS = ("shallow", "deep", "mask_decoder", "mask_decoder_reuse", "instance_decoder")
# what of the mask decoder depends on the deep features only (model.mask_decoder.MaskDecoder.context):
# a keyframe's mask_decoder outputs it, a non-keyframe's mask_decoder_reuse takes it
MASK_CONTEXT = ("p4", "p5", "gate3", "shift3")
# graph role -> (input names, output names); the engine and the exporter share this contract
GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "shallow": (("image",), ("x3",)),
    "deep": (("x3",), ("x4", "x5", "x6")),
    "mask_decoder": (("x3", "x4", "x5", "x6"), ("mask_features", *MASK_CONTEXT)),
    "mask_decoder_reuse": (("x3", *MASK_CONTEXT), ("mask_features",)),
    "instance_decoder": (("x6", "mask_features"), ("logits", "objectness", "kernels")),
}
# inputs a graph takes only in some models: the instance decoder of a model with a mask-pooled class
# (model.instance_decoder.MaskPooledClassifier) reads x4
OPTIONAL_INPUTS: dict[str, tuple[str, ...]] = {"instance_decoder": ("x4",)}


class ModelLoadError(RuntimeError):
    """A model directory, ``model.yaml`` or graph file that is missing, corrupt or of the wrong shape."""


@dataclass
class ModelSpec:
    """The parsed ``model.yaml``; ``graphs[(w, h)][precision][role]`` is an absolute path."""

    root: Path
    classes: list[str]
    mean: float
    scale: float
    mask_stride: int
    kernel_dim: int
    num_queries: int
    defaults: dict[str, Any]  # MODEL_DEFAULTS updated with model.yaml's
    graphs: dict[tuple[int, int], dict[str, dict[str, Path]]]
    raw: dict[str, Any]
    # how many of each kernel's last elements are a location prior, not appearance (the tracker
    # associates on appearance only)
    location_terms: int = 0


def parse_resolution(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); ValueError with the expected form otherwise."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"resolution must look like 640x480 (width x height), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"resolution must be positive, got {text!r}")
    return w, h


def expected_shapes(spec: ModelSpec, resolution: tuple[int, int]) -> dict[str, list[int | None]]:
    """Tensor name -> expected shape at ``resolution``; None where the backbone decides (channels,
    sizes of x4..x6)."""
    w, h = resolution
    s = spec.mask_stride
    return {
        "image": [1, h, w, None],  # RGB, or RGBA where an INT8 stem takes a fourth channel (engine.py)
        "x3": [1, None, -(-h // s), -(-w // s)],
        "x4": [1, None, None, None],
        "x5": [1, None, None, None],
        "x6": [1, None, None, None],
        **{name: [1, None, None, None] for name in MASK_CONTEXT},
        "mask_features": [1, spec.kernel_dim, -(-h // s), -(-w // s)],
        "logits": [1, spec.num_queries, len(spec.classes)],
        "objectness": [1, spec.num_queries],
        "kernels": [1, spec.num_queries, spec.kernel_dim],
    }


def _require(mapping: dict, key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ModelLoadError(f"{where}: missing key {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise ModelLoadError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _graph_paths(root: Path, entry: Any, where: Path, label: str) -> dict[str, Path]:
    if not isinstance(entry, dict):
        raise ModelLoadError(f"{where}: {label} must map graph roles {GRAPHS} to files, got {entry!r}")
    paths = {}
    for role in GRAPHS:
        rel = _require(entry, role, str, where)
        path = root / rel
        if not path.is_file():
            raise ModelLoadError(f"{path}: graph file missing ({label} {role}, named in {where})")
        paths[role] = path
    return paths


def load_spec(model_dir: str | Path) -> ModelSpec:
    """Read and check ``<model_dir>/model.yaml`` and that every graph file it names exists."""
    root = Path(model_dir).resolve()
    if not root.is_dir():
        raise ModelLoadError(f"{root}: model directory does not exist (expected model.yaml + .onnx graphs)")
    where = root / "model.yaml"
    if not where.is_file():
        raise ModelLoadError(f"{where}: missing (expected the model description written by mobileinst-export)")
    try:
        raw = yaml.safe_load(where.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{where}: not valid YAML ({err})") from None
    if isinstance(raw, dict) and raw.get("format") == "mobileinst-onnx-1":
        raise ModelLoadError(f"{where}: format mobileinst-onnx-1 (float image input, no mask_decoder_reuse) "
                             f"is no longer read; "
                             f"export the checkpoint again with mobileinst-export")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ModelLoadError(f"{where}: expected 'format: {FORMAT}'")
    norm = _require(raw, "normalisation", dict, where)
    graphs: dict[tuple[int, int], dict[str, dict[str, Path]]] = {}
    for name, entry in _require(raw, "resolutions", dict, where).items():
        try:
            resolution = parse_resolution(name)
        except ValueError as err:
            raise ModelLoadError(f"{where}: {err}") from None
        if not isinstance(entry, dict) or "fp32" not in entry:
            raise ModelLoadError(f"{where}: resolution {name} needs an 'fp32' graph set")
        graphs[resolution] = {prec: _graph_paths(root, files, where, f"{name} {prec}")
                              for prec, files in entry.items()}
    if not graphs:
        raise ModelLoadError(f"{where}: 'resolutions' is empty")
    return ModelSpec(
        root=root,
        classes=[str(c) for c in _require(raw, "classes", list, where)],
        mean=float(_require(norm, "mean", (int, float), where)),
        scale=float(_require(norm, "scale", (int, float), where)),
        mask_stride=_require(raw, "mask_stride", int, where),
        kernel_dim=_require(raw, "kernel_dim", int, where),
        num_queries=_require(raw, "num_queries", int, where),
        defaults={**MODEL_DEFAULTS, **(raw.get("defaults") or {})},
        graphs=graphs,
        raw=raw,
        location_terms=_require({"location_terms": 0, **raw}, "location_terms", int, where),
    )
