"""``mobileinst-quantize``: static INT8 graphs for an exported model directory, where INT8 pays.

onnxruntime's ``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations), calibrated on
frames of the training data run through the FP32 graphs (the non-keyframe mask decoder also sees a later
frame's x3 with an earlier frame's mask context, as on non-keyframes).

"Quantize as much as pays": for every graph, candidates are FP32, INT8 everywhere and INT8 except
convolutions with fewer than 8 input channels (the RGB stem, which runs slower in INT8), each with 7-bit
weights (``reduce_range``) and with full 8-bit weights (``_w8``). 7-bit weights are what AVX2 CPUs without
VNNI need (their u8s8 kernels saturate with 8-bit weights and drift far from FP32); on VNNI x86 and on ARM
8-bit weights are exact and much closer to FP32. Each candidate is timed interleaved on one thread and
compared with FP32 on held-out frames, on the CPU that quantizes (so quantize on the target CPU's kind).
Among the candidates whose outputs keep ``cosine >= --min-cosine``, those within 5% of the fastest count as
equally fast and the most accurate of them wins: FP32 unless an INT8 graph is at least 5% faster. The INT8
set in ``model.yaml`` names the winner per graph and ``quantization`` records the measurements.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import yaml
from tqdm import tqdm
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from mobileinst_ros.runtime.engine import Engine, ModelLoadError
from mobileinst_ros.runtime.model_dir import GRAPHS
from mobileinst_ros.runtime.sessions import cpu_session

__all__ = ["QuantizeError", "calibration_images", "collect_inputs", "fold_input_normalisation", "quantize_file",
           "quantize_model", "main"]

MIN_GAIN = 0.05  # latencies closer than this are one speed (timing noise); INT8 must beat FP32 by more
# On a weak model (VIS AP 6) an INT8 shallow graph at cosine 0.885 cost nothing; on the lean shapes model
# of 6 December (AP 23.8, `make eval` set, T=1) a shallow graph at 0.883, or 0.908 with its stem in FP32,
# cost 5 AP, while deep (0.988) and mask decoder (0.999) graphs in INT8 cost 0.5: the gate sits between.
# On the default model of 6 December an INT8 instance decoder at 0.956 cost 1.8 HOTA and 0.02 phantoms per
# frame on the held-out real videos (T=1) while its shallow graph at 0.969 cost nothing: hence 0.96.
MIN_COSINE = 0.96
# Below this cosine the best INT8 candidate also tries each convolution and matmul alone in FP32 and keeps
# the most helpful: on the lean shallow graph, the first depthwise convolution (Lite0's block 0) in FP32
# takes the cosine from 0.975 to 0.993.
SEARCH_BELOW = 0.99
SEARCHED_OPS = ("Conv", "MatMul", "Gemm")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
           "entropy": CalibrationMethod.Entropy}


class QuantizeError(RuntimeError):
    """Quantization cannot proceed (bad calibration data, model directory)."""


@dataclass
class Candidate:
    """One way to run a graph: ``path`` (quantized with ``reduce_range``, ``exclude`` left in FP32), median
    latency in ms, worst cosine to FP32 over outputs."""

    name: str
    path: Path
    reduce_range: bool = True
    exclude: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    cosine: float = 1.0
    prepared: Path | None = None  # the pre-processed FP32 graph it was quantized from


def calibration_images(root: str | Path, count: int, gap: int = 2) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Up to ``count`` (frame, frame ``gap`` later in the same folder or None) pairs of RGB images,
    spread evenly over the image files under ``root`` (a YouTube-VIS dataset or any image folder)."""
    root = Path(root)
    if not root.is_dir():
        raise QuantizeError(f"{root}: calibration directory not found (expected training images)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise QuantizeError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} images found for calibration")
    picks = np.unique(np.linspace(0, len(files) - 1, min(count, len(files))).round().astype(int))
    pairs = []
    for i in picks:
        later = i + gap if i + gap < len(files) and files[i + gap].parent == files[i].parent else None
        pairs.append((_read_rgb(files[i]), None if later is None else _read_rgb(files[later])))
    return pairs


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise QuantizeError(f"{path}: unreadable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def collect_inputs(engine: Engine, pairs: list[tuple[np.ndarray, np.ndarray | None]],
                   resolution: tuple[int, int]) -> dict[str, list[dict[str, np.ndarray]]]:
    """Feeds of every graph at ``resolution`` computed by the FP32 ``engine`` on the image pairs."""
    feeds: dict[str, list[dict[str, np.ndarray]]] = {role: [] for role in GRAPHS}
    for first, later in pairs:
        prepared = engine.prepare(first, resolution)
        features = engine.keyframe_features(prepared)
        feeds["shallow"].append({"image": prepared.tensor})
        feeds["deep"].append({"x3": features.x3})
        feeds["mask_decoder"].append({"x3": features.x3, "x4": features.x4, "x5": features.x5, "x6": features.x6})
        feeds["mask_decoder_reuse"].append({"x3": features.x3, **features.context})
        decoder_inputs = {"x6": features.x6, "mask_features": features.mask_features, "x4": features.x4}
        feeds["instance_decoder"].append({name: decoder_inputs[name]
                                          for name in engine.graph_inputs(resolution, "instance_decoder")})
        if later is not None:
            now = engine.prepare(later, resolution)
            feeds["mask_decoder_reuse"].append({"x3": engine.shallow(now), **features.context})
    return feeds


class _Reader(CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _stem_convs(path: Path) -> list[str]:
    """Dense (group 1) convolutions with fewer than 8 input channels, i.e. on the RGB image: INT8
    im2col on 3 channels is slower than FP32."""
    model = onnx.load(str(path))
    shapes = {i.name: i.dims for i in model.graph.initializer}

    def dense_and_thin(node: onnx.NodeProto) -> bool:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
        return group == 1 and weight is not None and weight[1] < 8

    return [n.name for n in model.graph.node if n.op_type == "Conv" and dense_and_thin(n)]


def _prepare(src: Path, dst: Path) -> None:
    # ONNX shape inference only: the symbolic one gives up on the shared graphs' symbolic sizes
    quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)


def _image_channels(inputs: list) -> int | None:
    """Channels of a uint8 image input [1, h, w, C] (onnx ValueInfo or onnxruntime NodeArg), else None."""
    first = inputs[0]
    if isinstance(first, onnx.ValueInfoProto):
        if first.type.tensor_type.elem_type != onnx.TensorProto.UINT8:
            return None
        return first.type.tensor_type.shape.dim[-1].dim_value
    return first.shape[-1] if first.type == "tensor(uint8)" else None


def _fit(feed: dict[str, np.ndarray], channels: int | None) -> dict[str, np.ndarray]:
    """A feed for a graph whose image input has ``channels``: RGB images get a fourth, constant channel
    (``_widen_stem``: its weights are zero, so its value does not matter)."""
    image = feed.get("image")
    if channels != 4 or image is None or image.shape[-1] != 3:
        return feed
    return {**feed, "image": np.concatenate([image, np.full_like(image[..., :1], 255)], axis=-1)}


def _quantize_prepared(prepared: Path, dst: Path, feeds: list[dict[str, np.ndarray]], method: str,
                       exclude: list[str], reduce_range: bool) -> None:
    channels = _image_channels(list(onnx.load(str(prepared), load_external_data=False).graph.input))
    feeds = [_fit(f, channels) for f in feeds]
    quantize_static(str(prepared), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=METHODS[method], nodes_to_exclude=exclude,
                    extra_options={"CalibMovingAverage": method == "minmax"})
    model = onnx.load(str(dst))
    if fold_input_normalisation(model):
        onnx.save(model, str(dst))


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return onnx.numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return onnx.numpy_helper.to_array(node.attribute[0].t)
    return None


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _input_chain(model: onnx.ModelProto, consumers: dict[str, list[onnx.NodeProto]],
                 last: str) -> list[onnx.NodeProto] | None:
    """The exported normalisation ``Transpose(image) -> Cast -> Sub(mean) -> Div(scale)`` and the ``last``
    node after it, each the only reader of the one before, mean and scale scalars; None otherwise."""
    chain, tensor = [], model.graph.input[0].name
    for op_type in ("Transpose", "Cast", "Sub", "Div", last):
        readers = consumers.get(tensor, [])
        if len(readers) != 1 or readers[0].op_type != op_type:
            return None
        chain.append(readers[0])
        tensor = readers[0].output[0]
    for name in (chain[2].input[1], chain[3].input[1]):
        value = _constant(model, name)
        if value is None or value.size != 1:
            return None
    return chain


def _normalisation_chain(model: onnx.ModelProto,
                         consumers: dict[str, list[onnx.NodeProto]]) -> list[onnx.NodeProto] | None:
    """``_input_chain`` ending in the QuantizeLinear of the normalised image, with an integer mean in 0..255
    (which a pixel can hold exactly); None otherwise."""
    chain = _input_chain(model, consumers, "QuantizeLinear")
    mean = float(_constant(model, chain[2].input[1])) if chain else None
    return chain if mean is not None and mean == round(mean) and 0 <= mean <= 255 else None


def _widen_stem(prepared: Path, dst: Path) -> bool:
    """Write ``prepared`` with a four-channel image input to ``dst``: the first convolution after the
    normalisation gets a fourth input channel of zero weights (exact). onnxruntime's INT8 convolution
    with three input channels is slow: the 640x480 stem takes 3.5 ms with 3 and 2.3 ms with 4 (in FP32 the
    fourth channel costs time instead, so only INT8 candidates are widened). False when ``prepared`` has
    no uint8 RGB input feeding Transpose -> Cast -> Sub -> Div -> Conv."""
    model = onnx.load(str(prepared))
    graph = model.graph
    chain = _input_chain(model, _consumers(graph), "Conv") if _image_channels(list(graph.input)) == 3 else None
    if chain is None:
        return False
    weights = next((i for i in graph.initializer if i.name == chain[-1].input[1]), None)
    if weights is None or len(weights.dims) != 4 or weights.dims[1] != 3:
        return False
    w = onnx.numpy_helper.to_array(weights)
    weights.CopyFrom(onnx.numpy_helper.from_array(np.concatenate([w, np.zeros_like(w[:, :1])], axis=1), weights.name))
    graph.input[0].type.tensor_type.shape.dim[-1].dim_value = 4
    widened = {node.output[0] for node in chain[:-1]}
    for info in [v for v in graph.value_info if v.name in widened]:  # shapes inferred for 3 channels
        graph.value_info.remove(info)
    onnx.save(model, str(dst))
    return True


def fold_input_normalisation(model: onnx.ModelProto) -> bool:
    """Let a quantized graph read its uint8 image input directly: the exported chain
    ``Transpose(image) -> Cast -> Sub(mean) -> Div(scale) -> QuantizeLinear`` is replaced by the
    transposed pixels themselves, and the DequantizeLinear after it gets scale 1/scale and zero point
    mean, which is exact for an integer mean (the pixel is its own quantized value). That saves a float
    image, its normalisation and its quantization per frame. Returns False (graph unchanged) when the
    graph does not have that chain, e.g. when its first convolution stays in FP32."""
    graph = model.graph
    consumers = _consumers(graph)
    chain = _normalisation_chain(model, consumers)
    dequantizers = consumers.get(chain[-1].output[0], []) if chain else []
    if not dequantizers or any(n.op_type != "DequantizeLinear" for n in dequantizers):
        return False
    transpose, cast, sub, div, quantize = chain
    mean, scale = float(_constant(model, sub.input[1])), float(_constant(model, div.input[1]))
    for k, node in enumerate(dequantizers):
        scale_name, zero_name = f"image_pixels_scale_{k}", f"image_pixels_zero_point_{k}"
        graph.initializer.extend([onnx.numpy_helper.from_array(np.array(1.0 / scale, np.float32), scale_name),
                                  onnx.numpy_helper.from_array(np.array(round(mean), np.uint8), zero_name)])
        node.input[:] = [transpose.output[0], scale_name, zero_name]
    for node in (cast, sub, div, quantize):
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return True


def quantize_file(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]], method: str, exclude: list[str],
                  reduce_range: bool = True) -> None:
    """One ONNX graph -> static INT8 QDQ (per-channel int8 weights, 7-bit with ``reduce_range``, uint8
    activations) calibrated on ``feeds``."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        _prepare(src, prepared)
        _quantize_prepared(prepared, dst, feeds, method, exclude, reduce_range)


def _candidate(prepared: Path, out_dir: Path, graph: str, name: str, reduce_range: bool, exclude: list[str],
               calibrate: list[dict], method: str) -> Candidate:
    """The INT8 candidate ``name`` of graph ``graph``, quantized into ``out_dir``."""
    candidate = Candidate(name, out_dir / f"{graph}.{name}.onnx", reduce_range, exclude, prepared=prepared)
    _quantize_prepared(prepared, candidate.path, calibrate, method, exclude, reduce_range)
    return candidate


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float(np.allclose(a, b))


def _run(session: ort.InferenceSession, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return session.run(None, _fit(feed, _image_channels(session.get_inputs())))


def _worst_cosine(session: ort.InferenceSession, feeds: list[dict[str, np.ndarray]],
                  references: list[list[np.ndarray]]) -> float:
    return min(_cosine(o, ref) for feed, refs in zip(feeds, references)
               for o, ref in zip(_run(session, feed), refs))


def _measure(candidates: list[Candidate], feeds: list[dict[str, np.ndarray]], repeats: int) -> None:
    """Interleaved medians of latency, and each candidate's worst cosine to the first (FP32)."""
    sessions = [cpu_session(c.path) for c in candidates]
    fitted = [[_fit(feed, _image_channels(session.get_inputs())) for feed in feeds] for session in sessions]
    times: list[list[float]] = [[] for _ in candidates]
    for r in range(repeats + 1):
        for i in range(len(feeds)):
            for k, session in enumerate(sessions):
                start = time.perf_counter()
                session.run(None, fitted[k][i])
                if r > 0:  # the first pass warms up
                    times[k].append((time.perf_counter() - start) * 1000)
    references = [_run(sessions[0], feed) for feed in feeds]
    for c, t, session in zip(candidates, times, sessions):
        c.latency_ms, c.cosine = float(np.median(t)), _worst_cosine(session, feeds, references)


def _with_sensitive_node_in_fp32(src: Path, prepared: Path, base: Candidate, calibrate: list[dict], method: str,
                                 probes: int = 8) -> Candidate | None:
    """``base`` plus the one convolution or matmul whose FP32 raises the cosine most (one quantization per
    node, scored on calibration frames so that the held-out ones still judge the result), or None."""
    probe = calibrate[:probes]
    references = [_run(cpu_session(src), feed) for feed in probe]
    best, best_cosine = None, _worst_cosine(cpu_session(base.path), probe, references)
    nodes = [n.name for n in onnx.load(str(src)).graph.node if n.op_type in SEARCHED_OPS and n.name not in base.exclude]
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "trial.onnx"
        for node in tqdm(nodes, desc=f"{src.name}: one node in FP32", leave=False, disable=None):
            _quantize_prepared(prepared, trial, calibrate, method, base.exclude + [node], base.reduce_range)
            cosine = _worst_cosine(cpu_session(trial), probe, references)
            if cosine > best_cosine:
                best, best_cosine = node, cosine
    if best is None:
        return None
    return _candidate(prepared, base.path.parent, src.stem, f"{base.name}_fp32_node", base.reduce_range,
                      base.exclude + [best], calibrate, method)


def quantize_graph(src: Path, out_dir: Path, calibrate: list[dict], held_out: list[dict], method: str,
                   min_cosine: float, repeats: int,
                   search_below: float = SEARCH_BELOW) -> tuple[Candidate, list[Candidate]]:
    """Quantize one graph every candidate way, measure, return (winner, all candidates)."""
    candidates = [Candidate("fp32", src)]
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = {"int8": []}
    stem = _stem_convs(src)
    if stem:
        variants["int8_fp32_stem"] = stem
    with tempfile.TemporaryDirectory() as tmp:
        prepared, wide = Path(tmp) / "prepared.onnx", Path(tmp) / "prepared_rgba.onnx"
        _prepare(src, prepared)  # once: every candidate and search trial quantizes the same prepared graphs
        widened = _widen_stem(prepared, wide)
        for name, exclude in variants.items():
            source = wide if widened and not exclude else prepared  # a stem left in FP32 keeps 3 channels
            for suffix, reduce_range in (("", True), ("_w8", False)):
                candidates.append(_candidate(source, out_dir, src.stem, name + suffix, reduce_range, exclude,
                                             calibrate, method))
        _measure(candidates, held_out, repeats)
        most_accurate = max(candidates[1:], key=lambda c: c.cosine)
        if most_accurate.cosine < search_below:
            searched = _with_sensitive_node_in_fp32(src, most_accurate.prepared, most_accurate, calibrate, method)
            if searched is not None:
                candidates.append(searched)
                _measure(candidates, held_out, repeats)
    good = candidates[:1] + [c for c in candidates[1:] if c.cosine >= min_cosine]  # FP32 is the reference
    fastest = min(c.latency_ms for c in good)
    # within the timing noise accuracy is worth more: FP32 (cosine 1) wins unless INT8 is clearly faster
    winner = max((c for c in good if c.latency_ms * (1 - MIN_GAIN) <= fastest), key=lambda c: c.cosine)
    return winner, candidates


def quantize_model(model_dir: str | Path, pairs: list, method: str = "minmax", min_cosine: float = MIN_COSINE,
                   held_out_fraction: float = 0.25, repeats: int = 2, search_below: float = SEARCH_BELOW,
                   log: Callable[[str], None] = print) -> dict:
    """Add INT8 graph sets to ``model_dir`` (in place) and return the ``quantization`` record."""
    model_dir = Path(model_dir).resolve()
    engine = Engine(model_dir, threads=1)
    spec_path = model_dir / "model.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    # graph files shared by several resolutions are calibrated on all of them
    files: dict[Path, list[tuple[int, int]]] = {}
    for res, sets in engine.spec.graphs.items():
        for role, path in sets["fp32"].items():
            files.setdefault(path, []).append(res)
    feeds = {res: collect_inputs(engine, pairs, res) for res in engine.resolutions}
    record, chosen = {}, {}
    for path, resolutions in files.items():
        role = next(r for r, p in engine.spec.graphs[resolutions[0]]["fp32"].items() if p == path)
        # onnxruntime's histogram calibrators (percentile, entropy) stack each tensor over the batches, so they
        # need one shape: a file shared by several resolutions calibrates on its largest one with them
        if method != "minmax":
            resolutions = [max(resolutions, key=lambda r: r[0] * r[1])]
        items = [f for res in resolutions for f in feeds[res][role]]
        split = max(1, int(len(items) * held_out_fraction))
        calibrate, held_out = items[split:], items[:split]
        winner, candidates = quantize_graph(path, path.parent / "int8", calibrate, held_out, method,
                                            min_cosine, repeats, search_below)
        rel = str(path.relative_to(model_dir))
        for c in candidates:
            if c is not winner and c.path != path:
                c.path.unlink()
        final = winner.path if winner.path == path else winner.path.with_name(f"{path.stem}.onnx")
        if final != winner.path:
            winner.path.rename(final)
        chosen[path] = final
        record[rel] = {"chosen": winner.name,
                       **{c.name: {"latency_ms": round(c.latency_ms, 2), "cosine": round(c.cosine, 5),
                                   **({"fp32_nodes": c.exclude} if c.exclude else {})} for c in candidates}}
        log(f"{rel}: " + ", ".join(f"{c.name} {c.latency_ms:.1f} ms cos {c.cosine:.4f}" for c in candidates)
            + f" -> {winner.name}")
    for name, sets in spec["resolutions"].items():
        res = tuple(int(v) for v in name.split("x"))
        sets["int8"] = {role: str(chosen[engine.spec.graphs[res]["fp32"][role]].relative_to(model_dir))
                        for role in GRAPHS}
    spec["quantization"] = {"method": method, "format": "QDQ, per-channel int8 weights (7-bit, or 8-bit "
                            "where the chosen candidate's name has _w8), uint8 activations",
                            "calibration_images": len(pairs), "min_cosine": min_cosine,
                            "graphs": record}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    Engine(model_dir, precision="int8")  # the INT8 set loads
    _update_model_card(model_dir / "MODEL_CARD.md", spec["quantization"])
    return spec["quantization"]


def _update_model_card(card: Path, record: dict) -> None:
    """Replace the card's INT8 section with this quantization's measurements."""
    text = card.read_text() if card.is_file() else ""
    text = text.split("\n## INT8")[0].rstrip("\n") + "\n"
    lines = ["", "## INT8", "",
             f"`mobileinst-quantize`: {record['format']}, {record['method']} calibration on "
             f"{record['calibration_images']} training frames. Per graph: median latency (1 thread) over "
             "held-out frames at every exported resolution, and the worst cosine to FP32 on them; the chosen "
             f"variant (the most accurate of those within 5% of the fastest with cosine >= "
             f"{record['min_cosine']}; FP32 unless INT8 is clearly faster) runs in the INT8 set. `_w8`: 8-bit "
             "weights (VNNI x86, ARM); without it 7-bit (safe on AVX2 without VNNI).", "",
             "| graph | chosen | candidates: median ms, cosine to FP32 |", "|---|---|---|"]
    for graph, entry in record["graphs"].items():
        measured = "; ".join(f"{name} {m['latency_ms']} ms, {m['cosine']}"
                             for name, m in entry.items() if name != "chosen")
        lines.append(f"| {graph} | {entry['chosen']} | {measured} |")
    card.write_text(text + "\n".join(lines) + "\n")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mobileinst-quantize", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="exported model directory (INT8 graphs are added to it)")
    parser.add_argument("--calibration", required=True,
                        help="training images: a YouTube-VIS dataset root or any folder of images")
    parser.add_argument("--images", type=int, default=64, help="calibration frames (a quarter is held out)")
    parser.add_argument("--method", choices=sorted(METHODS), default="minmax")
    parser.add_argument("--min-cosine", type=float, default=MIN_COSINE,
                        help="worst cosine to FP32 an INT8 graph may have on held-out frames")
    parser.add_argument("--search-below", type=float, default=SEARCH_BELOW,
                        help="graphs whose best INT8 cosine is under this also try each convolution and matmul "
                             "alone in FP32 (one quantization per node; 0 turns the search off)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        pairs = calibration_images(args.calibration, args.images)
        quantize_model(args.model, pairs, args.method, args.min_cosine, search_below=args.search_below)
    except (QuantizeError, ModelLoadError) as err:
        print(f"mobileinst-quantize: error: {err}", file=sys.stderr)
        return 1
    print(f"INT8 graphs added to {args.model} (model.yaml: resolutions.*.int8, quantization)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
