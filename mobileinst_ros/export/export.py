"""``mobileinst-export``: a checkpoint -> a model directory of ONNX graphs checked against torch.

Five graphs (tensor names in ``runtime/model_dir.GRAPH_IO``): ``shallow`` image->x3, ``deep``
x3->x4,x5,x6, ``mask_decoder`` x3..x6->mask_features and the mask context (p4, p5, gate3, shift3:
what depends on x4..x6 only), ``mask_decoder_reuse`` x3 + mask context->mask_features,
``instance_decoder`` x6,mask_features(,x4 with a mask-pooled class)->logits,objectness,kernels. A
keyframe runs shallow, deep, mask_decoder and instance_decoder; a non-keyframe runs only shallow and
mask_decoder_reuse on the keyframe's cached context (the mask decoder's weights are stored twice: 0.5 MB;
one fused keyframe graph measured no faster: 123.7 vs 122.7 ms at 640x480).
Weights are embedded (TorchScript exporter, no ``.data`` files).

Layouts: ``shared`` traces once with symbolic height/width and serves every resolution from one graph
set (one copy of the weights); ``per-resolution`` writes fixed-shape graphs per resolution (a copy of
the weights each); ``auto`` takes ``shared`` when it matches torch at every resolution (the model must
not turn sizes into Python ints while tracing), else ``per-resolution``.

Every graph is run with onnxruntime at every resolution on the same inputs as torch; any output beyond
tolerance stops the export with the tensor, the error and the tolerance (exit status 1, nothing written).
"""
from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import torch
import yaml
from torch import nn

from mobileinst_ros.model.mobileinst import normalize_images
from mobileinst_ros.runtime.model_dir import FORMAT, GRAPH_IO, GRAPHS, MASK_CONTEXT, MODEL_DEFAULTS, parse_resolution
from mobileinst_ros.runtime.sessions import cpu_session

__all__ = ["ExportError", "Parity", "load_checkpoint", "export_graphs", "export_model", "check_parity", "main"]

DEFAULT_RESOLUTIONS = ("640x480", "320x320")
WEIGHTS_FILE = "weights.pt"  # written by --weights
OPSET = 17


class ExportError(RuntimeError):
    """The export failed or does not match torch."""


@dataclass
class Parity:
    """Worst ONNX-vs-torch error of one tensor: ``max_abs`` and the tolerance it was held to."""

    graph: str
    tensor: str
    max_abs: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.tolerance


class _Shallow(nn.Module):
    """image uint8 [1,H,W,3], RGB as the camera sends it -> x3. The layout change and the normalisation
    run inside the graph: an INT8 graph then reads the pixels themselves as its first quantized tensor
    (``mobileinst-quantize`` folds the normalisation away), and no float copy of the image is made."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.backbone = model.backbone

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_shallow(normalize_images(image.permute(0, 3, 1, 2)))


class _Deep(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.backbone = model.backbone

    def forward(self, x3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.backbone.forward_deep(x3)


class _MaskDecoder(nn.Module):
    """A keyframe's mask decoder: x3..x6 -> mask_features and the context a non-keyframe reuses."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder = model.mask_decoder

    def forward(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor,
                x6: torch.Tensor) -> tuple[torch.Tensor, ...]:
        context = self.decoder.context(x3, x4, x5, x6)
        return (self.decoder.from_context(x3, *context), *context)


class _MaskDecoderReuse(nn.Module):
    """A non-keyframe's mask decoder: its own x3 on the keyframe's context -> mask_features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder = model.mask_decoder

    def forward(self, x3: torch.Tensor, *context: torch.Tensor) -> torch.Tensor:
        return self.decoder.from_context(x3, *context)


class _InstanceDecoder(nn.Module):
    """x6, mask_features (and x4 for a mask-pooled class) -> logits, objectness, kernels."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder = model.instance_decoder
        self.inputs = GRAPH_IO["instance_decoder"][0] + (("x4",) if self.decoder.mask_class is not None else ())

    def forward(self, x6: torch.Tensor, mask_features: torch.Tensor,
                x4: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        out = self.decoder(x6, mask_features, x4)
        return out["logits"], out["objectness"], out["kernels"]


def wrapper_inputs(module: nn.Module, role: str) -> tuple[str, ...]:
    """The input names of ``role``'s graph as ``module`` (one of ``_wrappers``') takes them."""
    return getattr(module, "inputs", GRAPH_IO[role][0])


def _wrappers(model: nn.Module) -> dict[str, nn.Module]:
    # eval() on each wrapper: the exporter restores the wrapper's own mode on the shared submodules
    wrappers = {"shallow": _Shallow(model), "deep": _Deep(model), "mask_decoder": _MaskDecoder(model),
                "mask_decoder_reuse": _MaskDecoderReuse(model), "instance_decoder": _InstanceDecoder(model)}
    return {role: module.eval() for role, module in wrappers.items()}


def load_checkpoint(path: str | Path) -> tuple[nn.Module, list[str], dict]:
    """A training checkpoint -> (model in eval mode, class names, checkpoint without weights)."""
    from mobileinst_ros.model import build_model

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for unreadable files
        raise ExportError(f"{path}: not a readable torch checkpoint ({err})") from None
    missing = [k for k in ("model", "config", "classes") if k not in ckpt]
    if missing:
        raise ExportError(f"{path}: checkpoint lacks {missing}; expected keys model, config, classes")
    model_cfg = dict(ckpt["config"].get("model", {}))
    # the weights come from the checkpoint: skip loading the ImageNet backbone
    model_cfg["backbone"] = {**model_cfg.get("backbone", {}), "pretrained": False}
    model = build_model(model_cfg, len(ckpt["classes"]))
    model.load_state_dict(ckpt["model"])
    info = {k: v for k, v in ckpt.items() if k != "model" and k != "optimizer"}
    return model.eval(), list(ckpt["classes"]), info


def _example_inputs(model: nn.Module, images: torch.Tensor) -> dict[str, tuple]:
    """Inputs of each graph, computed by torch from ``images`` uint8 [1,H,W,3]."""
    with torch.no_grad():
        x3 = _Shallow(model)(images)
        x4, x5, x6 = model.backbone.forward_deep(x3)
        context = model.mask_decoder.context(x3, x4, x5, x6)
        mf = model.mask_decoder.from_context(x3, *context)
    named = {"image": images, "x3": x3, "x4": x4, "x5": x5, "x6": x6, "mask_features": mf,
             **dict(zip(MASK_CONTEXT, context))}
    return {role: tuple(named[name] for name in wrapper_inputs(module, role))
            for role, module in _wrappers(model).items()}


# symbolic sizes of the shared layout, per tensor
_DYNAMIC_AXES = {"image": {1: "height", 2: "width"}, "x3": {2: "h8", 3: "w8"}, "x4": {2: "h16", 3: "w16"},
                 "x5": {2: "h32", 3: "w32"}, "x6": {2: "h64", 3: "w64"}, "mask_features": {2: "h8", 3: "w8"},
                 "p4": {2: "h16", 3: "w16"}, "p5": {2: "h32", 3: "w32"}, "gate3": {2: "h8", 3: "w8"},
                 "shift3": {2: "h8", 3: "w8"}}


def _onnx() -> ModuleType:
    """The onnx package, imported on first use: its ml_dtypes dependency takes ~1.3 s to import, which every
    training process (validation runs the exporter's wrappers, ``training.torch_engine``) would pay for nothing."""
    import onnx
    return onnx


def _export_graph(module: nn.Module, role: str, args: tuple, path: Path, dynamic: bool) -> None:
    inputs, outputs = wrapper_inputs(module, role), GRAPH_IO[role][1]
    axes = {n: _DYNAMIC_AXES[n] for n in inputs + outputs if n in _DYNAMIC_AXES} if dynamic else None
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated but needs no onnxscript; tracer warnings about sizes
        # taken as constants are settled by the parity check at every resolution
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, args, str(path), input_names=list(inputs), output_names=list(outputs),
                          opset_version=OPSET, do_constant_folding=True, dynamo=False, dynamic_axes=axes)
    _onnx().checker.check_model(str(path), full_check=True)
    if any(p.suffix == ".data" for p in path.parent.iterdir()):
        raise ExportError(f"{path}: exporter wrote external weight data; expected weights embedded")


def check_parity(module: nn.Module, role: str, args: tuple, path: Path, label: str,
                 rtol: float = 1e-3) -> list[Parity]:
    """Run ``path`` with onnxruntime and ``module`` with torch on ``args``; the tolerance of each output
    is ``rtol`` times its largest magnitude (at least ``rtol``). A graph that cannot run these inputs
    (sizes baked in at another resolution) raises ExportError."""
    inputs, outputs = wrapper_inputs(module, role), GRAPH_IO[role][1]
    with torch.no_grad():
        expected = module(*args)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    try:
        got = cpu_session(path).run(list(outputs), {n: a.numpy() for n, a in zip(inputs, args)})
    except Exception as err:  # onnxruntime raises its own exception types per failure
        raise ExportError(f"{path} at {label}: onnxruntime failed: {str(err).strip()[:300]}") from None
    report = []
    for name, want, have in zip(outputs, expected, got):
        want = want.numpy()
        if want.shape != have.shape:
            raise ExportError(f"{path} at {label}: {name} has shape {have.shape} in ONNX, {want.shape} in torch")
        tol = rtol * max(1.0, float(np.abs(want).max()))
        report.append(Parity(f"{label}/{role}", name, float(np.abs(want - have).max()), tol))
    return report


def _export_set(model: nn.Module, directory: Path, resolution: tuple[int, int], dynamic: bool) -> None:
    """Write the five graphs into ``directory``, traced at ``resolution``."""
    examples = _example_inputs(model, calibration_like_images(resolution))
    for role, module in _wrappers(model).items():
        _export_graph(module, role, examples[role], directory / f"{role}.onnx", dynamic)


def _check_set(model: nn.Module, directory: Path, resolution: tuple[int, int]) -> list[Parity]:
    """Parity of the graph set in ``directory`` at ``resolution``."""
    examples = _example_inputs(model, calibration_like_images(resolution))
    label = f"{resolution[0]}x{resolution[1]}"
    return [p for role, module in _wrappers(model).items()
            for p in check_parity(module, role, examples[role], directory / f"{role}.onnx", label)]


def _raise_if_bad(report: list[Parity]) -> None:
    bad = [p for p in report if not p.ok]
    if bad:
        raise ExportError("ONNX does not match torch: " + "; ".join(
            f"{p.graph} {p.tensor}: max abs error {p.max_abs:.3g} > tolerance {p.tolerance:.3g}" for p in bad))


def export_graphs(model: nn.Module, root: Path, resolutions: list[tuple[int, int]],
                  layout: str) -> tuple[dict[tuple[int, int], str], list[Parity]]:
    """Export and check graph sets under ``root``; returns (resolution -> graph folder relative to
    ``root``, parity report). Raises ExportError on any mismatch."""
    if layout not in ("auto", "shared", "per-resolution"):
        raise ExportError(f"layout must be auto, shared or per-resolution, got {layout!r}")
    if layout in ("auto", "shared"):
        _export_set(model, root, resolutions[0], dynamic=True)
        try:
            report = [p for r in resolutions for p in _check_set(model, root, r)]
            _raise_if_bad(report)
            return {r: "." for r in resolutions}, report
        except ExportError:
            if layout == "shared":
                raise
            for role in GRAPHS:
                (root / f"{role}.onnx").unlink()
            print("mobileinst-export: shared graphs do not match torch at every resolution (the model bakes "
                  "sizes in while tracing): writing one graph set per resolution", file=sys.stderr)
    report = []
    for w, h in resolutions:
        _export_set(model, root / f"{w}x{h}", (w, h), dynamic=False)
        report += _check_set(model, root / f"{w}x{h}", (w, h))
    _raise_if_bad(report)
    return {(w, h): f"{w}x{h}" for w, h in resolutions}, report


def calibration_like_images(resolution: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A smooth random RGB image, uint8 [1,H,W,3]: closer to real images than white noise, so that parity
    is checked where the network's activations usually are."""
    w, h = resolution
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(1, h // 16), max(1, w // 16), generator=gen) * 2 - 1
    fine = torch.rand(1, 3, h, w, generator=gen) * 0.2 - 0.1
    normalised = (torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
                  + fine).clamp(-1, 1)
    return (normalised * 128 + 127).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _model_yaml(classes: list[str], shapes: dict[str, tuple], folders: dict[tuple[int, int], str], info: dict,
                report: list[Parity], defaults: dict, location_terms: int) -> dict:
    return {
        "format": FORMAT,
        "classes": classes,
        "normalisation": {"mean": 127.0, "scale": 128.0},
        "mask_stride": 8,
        "kernel_dim": int(shapes["kernels"][2]),
        "num_queries": int(shapes["kernels"][1]),
        **({"location_terms": location_terms} if location_terms else {}),
        "defaults": defaults,
        "resolutions": {f"{w}x{h}": {"fp32": {role: str(Path(folder) / f"{role}.onnx") for role in GRAPHS}}
                        for (w, h), folder in folders.items()},
        "export": {
            "date": datetime.date.today().isoformat(),
            "torch": str(torch.__version__), "onnx": str(_onnx().__version__), "onnxruntime": str(ort.__version__),
            "opset": OPSET,
            "checkpoint_step": info.get("step"),
            "parity_max_abs": {f"{p.graph}:{p.tensor}": float(f"{p.max_abs:.3g}") for p in report},
        },
    }


def _training_data(info: dict) -> str:
    train = ((info.get("config") or {}).get("data") or {}).get("train")
    return str(train.get("json", train)) if isinstance(train, dict) else "see the training config"


def _training_lines(info: dict) -> list[str]:
    """The checkpoint's training recipe and its validation AP, for the card."""
    cfg = info.get("config") or {}
    train = cfg.get("train") or {}
    if not train:
        return []
    lines = [f"- training: seed {cfg.get('seed')}, {train.get('steps')} steps of {train.get('batch_size')} clip pairs "
             f"per process, crops {(cfg.get('data') or {}).get('crop_size')}, lr {train.get('lr')}"]
    if "val_ap" in info:
        lines.append(f"- validation AP of this checkpoint: {100 * info['val_ap']:.1f}")
    if info.get("best_ap", -1.0) >= 0:
        lines.append(f"- the run's best validation AP up to this checkpoint: {100 * info['best_ap']:.1f}")
    return lines


def _model_card(name: str, spec: dict, info: dict, sizes: dict[str, int]) -> str:
    lines = [
        f"# Model card: {name}",
        "",
        "MobileInst (EfficientNet-Lite0 backbone, semantic-enhanced mask decoder, dual instance decoder)",
        "exported for onnxruntime on one CPU core by `mobileinst-export`.",
        "",
        f"- classes ({len(spec['classes'])}): {', '.join(spec['classes'])}",
        f"- input: RGB uint8 [1, h, w, 3] letterboxed to one of {', '.join(spec['resolutions'])}; the graph "
        f"normalises it as (x - 127) / 128",
        f"- queries: {spec['num_queries']}, kernel dim: {spec['kernel_dim']}, masks at stride 8",
        f"- checkpoint step: {info.get('step')}; training data: {_training_data(info)}",
        *_training_lines(info),
        f"- exported {spec['export']['date']} with torch {spec['export']['torch']}, onnx opset {OPSET}",
        "",
        "## Files",
        "",
        "| file | MB |",
        "|---|---|",
        *[f"| {f} | {b / 1e6:.2f} |" for f, b in sorted(sizes.items())],
        "",
        "## Parity with torch (max abs error per output)",
        "",
        *[f"- {k}: {v:.2e}" for k, v in spec["export"]["parity_max_abs"].items()],
        "",
        "## Limits",
        "",
        "Trained on the project's data only (see the training config); accuracy figures come from",
        "`mobileinst-eval`. Non-keyframes reuse the keyframe's deep features and kernels: fast motion",
        "between keyframes degrades masks (adaptive keyframes trigger an early keyframe).",
    ]
    return "\n".join(lines) + "\n"


def _save_weights(model: nn.Module, classes: list[str], info: dict, path: Path) -> None:
    # float16 halves the file (5.7 MB for the default model); a fine-tuning start needs no more
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"model": state, "classes": classes, **{k: info[k] for k in ("config", "step", "category_ids")
                                                       if k in info}}, path)


def export_model(model: nn.Module, classes: list[str], out: str | Path, resolutions: list[tuple[int, int]],
                 info: dict | None = None, defaults: dict | None = None, layout: str = "auto",
                 weights: bool = False) -> list[Parity]:
    """Export ``model`` (eval mode) to the model directory ``out`` for each (w, h) in ``resolutions``;
    with ``weights`` also ``WEIGHTS_FILE``, the weights in float16 for fine-tuning
    (``mobileinst-train --init-from``; also a checkpoint ``mobileinst-export`` reads).

    Raises ExportError, leaving ``out`` untouched, if any output is beyond tolerance."""
    info = info or {}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)  # staged beside out: the final rename stays on one disk
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        folders, report = export_graphs(model, staging, resolutions, layout)
        probe = cpu_session(staging / folders[resolutions[0]] / "instance_decoder.onnx")
        shapes = {o.name: tuple(o.shape) for o in probe.get_outputs()}
        spec = _model_yaml(classes, shapes, folders, info, report, {**MODEL_DEFAULTS, **(defaults or {})},
                           getattr(model.mask_decoder, "location_terms", 0))
        (staging / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        sizes = {str(p.relative_to(staging)): p.stat().st_size for p in staging.rglob("*.onnx")}
        (staging / "MODEL_CARD.md").write_text(_model_card(out.name, spec, info, sizes))
        if weights:
            _save_weights(model, classes, info, staging / WEIGHTS_FILE)
        if out.exists():
            shutil.rmtree(out)
        staging.chmod(0o755)  # mkdtemp made it private; the robot's install must read it
        staging.rename(out)
        return report
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mobileinst-export", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="training checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="model directory to write, e.g. models/default")
    parser.add_argument("--resolution", action="append", default=None,
                        help=f"WxH, repeatable (default: {' '.join(DEFAULT_RESOLUTIONS)})")
    parser.add_argument("--layout", choices=("auto", "shared", "per-resolution"), default="auto",
                        help="one graph set for all resolutions (shared) or one per resolution")
    parser.add_argument("--score-threshold", type=float, default=MODEL_DEFAULTS["score_threshold"])
    parser.add_argument("--mask-threshold", type=float, default=MODEL_DEFAULTS["mask_threshold"])
    parser.add_argument("--max-instances", type=int, default=MODEL_DEFAULTS["max_instances"])
    parser.add_argument("--duplicate-iou", type=float, default=MODEL_DEFAULTS["duplicate_iou"],
                        help="mask NMS: drop a mask overlapping a better one above this IoU (1: off)")
    parser.add_argument("--weights", action="store_true",
                        help=f"also write {WEIGHTS_FILE}: the weights (float16) to fine-tune from with "
                             "mobileinst-train --init-from")
    parser.add_argument("--split-components", action="store_true",
                        help="instances are the connected parts of each mask (a model whose masks cover several "
                             "look-alikes at once)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    torch.set_num_threads(1)
    try:
        resolutions = [parse_resolution(r) for r in (args.resolution or DEFAULT_RESOLUTIONS)]
        bad = [f"{w}x{h}" for w, h in resolutions if w % 32 or h % 32]
        if bad:
            raise ExportError(f"resolutions {bad}: width and height must be multiples of 32")
        model, classes, info = load_checkpoint(args.checkpoint)
        defaults = {"score_threshold": args.score_threshold, "mask_threshold": args.mask_threshold,
                    "max_instances": args.max_instances, "duplicate_iou": args.duplicate_iou,
                    "split_components": args.split_components}
        report = export_model(model, classes, args.out, resolutions, info, defaults, args.layout, args.weights)
    except (ExportError, ValueError) as err:
        print(f"mobileinst-export: error: {err}", file=sys.stderr)
        return 1
    worst = max(report, key=lambda p: p.max_abs / p.tolerance)
    print(f"wrote {args.out}: {len(resolutions)} resolution(s), worst parity {worst.graph} {worst.tensor} "
          f"max abs {worst.max_abs:.2e} (tolerance {worst.tolerance:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
