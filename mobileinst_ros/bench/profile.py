"""Where the time goes: onnxruntime's operator profile of the keyframe and non-keyframe paths.

    python -m mobileinst_ros.bench.profile --model models/default [--resolution 640x480] [--runs 20]
        [--peer yolo11n-seg=runs/peers/yolo11n-seg.onnx] [--markdown PATH] [--json PATH]

Each graph of the model directory (FP32 by default) runs ``--runs`` times on one thread with
``enable_profiling`` on the inputs of one synthetic frame (the first run of every node is dropped: cold
caches). Every node's time and FLOPs (2 x multiply-adds of Conv, MatMul and Gemm, fused or not, from
the shapes onnxruntime reports, so as executed: x86's NCHWc layout pads channels to its block of 8
(AVX2) or 16 (AVX-512); other operators count 0) are summed per stage (graph) and per operator
type (as onnxruntime runs them, after its graph fusions: ``FusedConv`` is Conv + activation, NCHWc
``Conv``/``ReorderInput``/``ReorderOutput`` are x86 layout ops; convolutions split into 1x1, depthwise and dense kxk) for the
two paths:

- keyframe: shallow + deep + mask_decoder + instance_decoder
- non-keyframe (today's feature reuse): shallow + mask_decoder_reuse

``--peer NAME=PATH`` profiles a YOLO-seg graph the same way for ms per GFLOP beside ours. The ms are the
kernels' own (no session overhead, no numpy post-processing); compare them with ``mobileinst-bench``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mobileinst_ros.bench import write_json
from mobileinst_ros.data.synth import generate_video
from mobileinst_ros.runtime.engine import Engine, ModelLoadError
from mobileinst_ros.runtime.model_dir import GRAPH_IO, parse_resolution
from mobileinst_ros.runtime.sessions import cpu_session, session_options

__all__ = ["profile_graph", "node_flops", "main"]

PATHS = {"keyframe": ("shallow", "deep", "mask_decoder", "instance_decoder"),
         "non-keyframe": ("shallow", "mask_decoder_reuse")}


def _shapes(entries: list[dict]) -> list[list[int]]:
    return [next(iter(e.values())) for e in entries]


_WEIGHT = {"QLinearConv": 3}  # input index of the weights (x, x_scale, x_zero_point, w, ...); others: 1


def node_flops(op: str, inputs: list[list[int]], outputs: list[list[int]]) -> float:
    """FLOPs (2 x multiply-adds) of one executed node from its input/output shapes; 0 for operators
    without a weight or matrix product."""
    if not outputs or not inputs:
        return 0.0
    out = float(np.prod(outputs[0]))
    if op in ("Conv", "FusedConv", "QLinearConv", "ConvInteger") and len(inputs) > _WEIGHT.get(op, 1):
        w = inputs[_WEIGHT.get(op, 1)]
        if len(w) == 4:
            return 2.0 * out * w[1] * w[2] * w[3]
        if len(w) == 5:  # NCHWc weights [O/b, I/b, kh, kw, b, b] appear as 6-D; 5-D: depthwise blocked
            return 2.0 * out * w[2] * w[3]
        if len(w) == 6:
            return 2.0 * out * w[1] * w[2] * w[3] * w[4]
    if op == "ConvTranspose" and len(inputs) > 1 and len(inputs[1]) == 4:
        w = inputs[1]  # [C_in, C_out/groups, kh, kw]: every input value meets C_out/groups x kh x kw weights
        return 2.0 * float(np.prod(inputs[0])) * w[1] * w[2] * w[3]
    if op in ("MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "Gemm", "FusedGemm"):
        a = inputs[0]
        return 2.0 * out * (a[-1] if a else 0)
    return 0.0


def _kind(op: str, inputs: list[list[int]]) -> str:
    """Convolutions split by what limits them on a CPU: 1x1 (a GEMM), depthwise (memory), dense kxk."""
    index = _WEIGHT.get(op, 1)
    if op not in ("Conv", "FusedConv", "QLinearConv") or len(inputs) <= index or len(inputs[index]) != 4:
        return op
    w = inputs[index]
    if w[2] == w[3] == 1:
        return f"{op} 1x1"
    return f"{op} depthwise" if w[1] == 1 else f"{op} {w[2]}x{w[3]}"


def profile_graph(path: Path, feeds: dict[str, np.ndarray], runs: int, threads: int = 1) -> list[dict]:
    """Per executed node: ``name``, ``op``, ``ms`` (mean over ``runs`` - 1 runs), ``flops``."""
    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        session = cpu_session(path, options)
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, tuple[str, float]] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        name, args = e["name"][: -len("_kernel_time")], e.get("args", {})
        times[name].append(e["dur"] / 1000.0)
        if name not in meta:
            op = args.get("op_name", "?")
            inputs = _shapes(args.get("input_type_shape", []))
            meta[name] = (_kind(op, inputs), node_flops(op, inputs, _shapes(args.get("output_type_shape", []))))
    return [{"name": n, "op": meta[n][0], "ms": float(np.mean(t[1:] if len(t) > 1 else t)), "flops": meta[n][1]}
            for n, t in times.items()]


def _inputs(engine: Engine, resolution: tuple[int, int]) -> dict[str, dict[str, np.ndarray]]:
    w, h = resolution
    frame = generate_video(seed=2024, index=0, frames=1, width=w, height=h).frames[0]
    prepared = engine.prepare(frame, resolution)
    features = engine.keyframe_features(prepared)
    f = {"image": prepared.tensor, "x3": features.x3, "x4": features.x4, "x5": features.x5, "x6": features.x6,
         "mask_features": features.mask_features, **features.context}
    return {role: {name: f[name] for name in engine.graph_inputs(resolution, role)} for role in GRAPH_IO}


def _summary(nodes: list[dict]) -> dict:
    ms, flops = sum(n["ms"] for n in nodes), sum(n["flops"] for n in nodes)
    return {"ms": round(ms, 2), "gflops": round(flops / 1e9, 3),
            "ms_per_gflop": round(ms / (flops / 1e9), 2) if flops else None, "nodes": len(nodes)}


def _by_op(nodes: list[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for n in nodes:
        groups[n["op"]].append(n)
    return dict(sorted(((op, _summary(g)) for op, g in groups.items()), key=lambda kv: -kv[1]["ms"]))


def profile_model(model: str, resolution: tuple[int, int], precision: str, runs: int,
                  peers: list[tuple[str, Path]]) -> dict:
    engine = Engine(model, resolution=resolution, precision=precision)
    files = engine.spec.graphs[resolution][precision]
    feeds = _inputs(engine, resolution)
    stages = {role: profile_graph(files[role], feeds[role], runs) for role in files}
    result = {"model": model, "resolution": f"{resolution[0]}x{resolution[1]}", "precision": precision,
              "runs": runs, "onnxruntime": ort.__version__,
              "stages": {role: {**_summary(n), "by_op": _by_op(n)} for role, n in stages.items()},
              "paths": {}}
    for path, roles in PATHS.items():
        nodes = [n for r in roles for n in stages[r]]
        result["paths"][path] = {**_summary(nodes), "by_op": _by_op(nodes)}
    if "keyframe" in result["paths"]:
        key, non = result["paths"]["keyframe"]["ms"], result["paths"]["non-keyframe"]["ms"]
        result["non_keyframe_over_keyframe"] = round(non / key, 3)
    for name, path in peers:
        from mobileinst_ros.bench.yolo_seg import YoloSegModel

        peer = YoloSegModel(path)
        frame = generate_video(seed=2024, index=0, frames=1, width=640, height=480).frames[0]
        nodes = profile_graph(path, {peer.input_name: peer.prepare(frame)[1]}, runs)
        result["paths"][name] = {**_summary(nodes), "by_op": _by_op(nodes)}
    return result


def _markdown(result: dict) -> str:
    lines = [f"Model `{result['model']}`, {result['resolution']}, {result['precision']}, onnxruntime "
             f"{result['onnxruntime']}, one thread, mean of {result['runs'] - 1} profiled runs.", "",
             "| stage | ms | GFLOPs | ms/GFLOP | nodes |", "|---|---|---|---|---|"]
    for role, s in result["stages"].items():
        lines.append(f"| {role} | {s['ms']} | {s['gflops']} | {s['ms_per_gflop']} | {s['nodes']} |")
    for path, s in result["paths"].items():
        lines.append(f"| **{path}** | {s['ms']} | {s['gflops']} | {s['ms_per_gflop']} | {s['nodes']} |")
    for path, s in result["paths"].items():
        lines += ["", f"{path}, per operator type:", "", "| op | ms | share | GFLOPs | ms/GFLOP | nodes |",
                  "|---|---|---|---|---|---|"]
        for op, o in s["by_op"].items():
            if o["ms"] >= 0.05:
                lines.append(f"| {op} | {o['ms']} | {100 * o['ms'] / s['ms']:.0f}% | {o['gflops']} | "
                             f"{o['ms_per_gflop'] or '-'} | {o['nodes']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from mobileinst_ros.bench.bench import _peer_arg

    parser = argparse.ArgumentParser(prog="python -m mobileinst_ros.bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--resolution", default="640x480")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--peer", action="append", default=[], type=_peer_arg, metavar="NAME=PATH")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be >= 2 (the first run is dropped)")
    try:
        result = profile_model(args.model, parse_resolution(args.resolution), args.precision, args.runs, args.peer)
    except (ModelLoadError, ValueError) as err:
        print(f"profile: error: {err}", file=sys.stderr)
        return 1
    text = _markdown(result)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
