"""``Engine``: runs an exported MobileInst model directory with onnxruntime on the robot (no torch).

One onnxruntime session per graph (``runtime/model_dir.py``), intra-op threads 1 by default, inter-op 1,
sequential execution. The engine offers the pieces the tracker composes:

- ``prepare(image)`` -> ``Prepared`` (checked RGB, letterbox geometry, the letterboxed uint8 input)
- ``keyframe_features(prepared)``: shallow + deep backbone + mask decoder -> ``Features``
- ``reuse_features(prepared, keyframe)``: shallow backbone + the mask decoder's stride-8 part on the
  keyframe's mask context
- ``shallow_in_windows(prepared, x3, windows)``: an earlier x3 with only some windows recomputed from this image
- ``decode(features)``: instance decoder; ``select(decoded, features, geometry)``: scores rescored by
  maskness -> ``Detections`` (``detect`` does both)
- ``reuse_masks(kernels, features, geometry)``: a keyframe's kernels on new mask features
- ``to_image(mask_logits, geometry)``: boolean masks at the image's resolution and their boxes

and ``infer(image)`` for a single image (a keyframe without tracking).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

from mobileinst_ros.runtime.model_dir import (GRAPH_IO, MASK_CONTEXT, OPTIONAL_INPUTS, ModelLoadError, ModelSpec,
                                              expected_shapes, load_spec, parse_resolution)
from mobileinst_ros.runtime.postprocess import (Box, Rect, grow_rect, mask_logits, mask_stats, masks_to_image,
                                                not_duplicates, query_scores, rank, restrict, split_components)
from mobileinst_ros.runtime.preprocess import Geometry, check_rgb8, make_geometry, to_model_input
from mobileinst_ros.runtime.sessions import cpu_session, session_options

__all__ = ["Engine", "Prepared", "Features", "Detections", "Instance", "ModelLoadError", "NonFiniteOutputError"]


class NonFiniteOutputError(RuntimeError):
    """A graph produced NaN or inf: the frame must be dropped."""


@dataclass
class Prepared:
    """One image ready for the network: ``rgb`` (H, W, 3) uint8 and its ``geometry``. ``tensor``, the network's
    input (letterboxed uint8 [1, h, w, 3], or 4 channels: ``_Graph.image_channels``), is made on first use: a
    non-keyframe whose shallow backbone runs on a smaller image (``Engine.shallow_scaled``) never needs it."""

    rgb: np.ndarray
    geometry: Geometry
    pad_value: int
    channels: int

    @cached_property
    def tensor(self) -> np.ndarray:
        return to_model_input(self.rgb, self.geometry, self.pad_value, self.channels)

    @property
    def resolution(self) -> tuple[int, int]:
        return self.geometry.input_size


@dataclass
class Features:
    """Per-frame features at one model resolution (batch 1): x3 (stride 8), the deep x4, x5, x6 and the
    mask decoder's ``context`` (``MASK_CONTEXT`` names; on a non-keyframe all of these are the
    keyframe's) and mask_features [1, D, h/8, w/8]."""

    resolution: tuple[int, int]
    x3: np.ndarray
    x4: np.ndarray
    x5: np.ndarray
    x6: np.ndarray
    mask_features: np.ndarray
    context: dict[str, np.ndarray]


@dataclass
class Detections:
    """Instances found on a keyframe, best first: ``kernels`` [K, D], ``class_ids`` [K], ``scores`` [K]
    (query score x maskness), ``query_scores`` [K] (before rescoring), ``maskness`` [K], ``cells`` [K]
    (mask area in stride-8 cells), stride-8 ``mask_logits`` [K, h, w] and ``query_indices`` [K]."""

    kernels: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    query_scores: np.ndarray
    maskness: np.ndarray
    cells: np.ndarray
    mask_logits: np.ndarray
    query_indices: np.ndarray


@dataclass
class Instance:
    """One instance in one image (no track id)."""

    class_id: int
    score: float
    bbox: tuple[int, int, int, int]
    mask: np.ndarray


def _check_finite(outputs: dict[str, np.ndarray], graph: str) -> None:
    for name, value in outputs.items():
        if not np.isfinite(value).all():
            raise NonFiniteOutputError(f"{graph} produced NaN/inf in {name!r}")


# Graphs of the shared (any-size) export that run faster in a session of their own per input size: with the sizes
# fixed, onnxruntime folds the export's run-time size arithmetic and plans the buffers once. One core, 640x480,
# the default model (docs/performance.md): mask decoder -12% (FP32 and INT8), its reuse part -11 to -16%, deep -1 to
# -3%; the shallow graph gains nothing and the instance decoder runs 5% slower, so they keep the any-size session.
_SIZE_FIXED_ROLES = frozenset({"deep", "mask_decoder", "mask_decoder_reuse"})
# The most context (stride-8 cells around a crop) tried for a shallow graph (Engine.shallow_context): the lean
# Lite0 prefix needs 4 (it sees 59 px, 29 on each side of a cell); a graph that needs more than this, or that has
# a global operation, gets no crops
MAX_SHALLOW_CONTEXT_CELLS = 8


class _Graph:
    """One onnxruntime session with its checked tensor names (and, for ``_SIZE_FIXED_ROLES``, one session per
    input size, made on that size's first run)."""

    def __init__(self, path: Path, role: str, options: Callable[[], ort.SessionOptions]) -> None:
        try:
            self.session = cpu_session(path, options())
        except Exception as err:  # onnxruntime raises several unrelated types for unreadable files
            raise ModelLoadError(f"{path}: cannot load as ONNX ({role} graph): {str(err).strip()}") from None
        self.path, self.role = path, role
        required, self.outputs = GRAPH_IO[role]
        present = {t.name for t in self.session.get_inputs()}
        self.inputs = required + tuple(name for name in OPTIONAL_INPUTS.get(role, ()) if name in present)
        self._options = options
        self._sized: dict[tuple, ort.InferenceSession] = {}

    def check_signature(self, shapes: dict) -> None:
        """ModelLoadError unless the graph's tensor names and shapes fit ``shapes`` (name -> shape)."""
        got = {t.name: t.shape for t in self.session.get_inputs() + self.session.get_outputs()}
        got_in = [t.name for t in self.session.get_inputs()]
        got_out = [t.name for t in self.session.get_outputs()]
        if sorted(got_in) != sorted(self.inputs) or not set(self.outputs) <= set(got_out):
            raise ModelLoadError(f"{self.path}: {self.role} graph must map {list(self.inputs)} -> "
                                 f"{list(self.outputs)}, got {got_in} -> {got_out}")
        for name in self.inputs + self.outputs:
            expected = shapes[name]
            shape = got[name]
            # a symbolic dimension (str/None) fits any size: the shared layout serves several resolutions
            ok = len(shape) == len(expected) and all(
                e is None or s == e or not isinstance(s, int) for s, e in zip(shape, expected))
            if not ok:
                raise ModelLoadError(f"{self.path}: tensor {name!r} has shape {shape}, expected "
                                     f"{['any' if e is None else e for e in expected]}")

    @cached_property  # read on every frame's pre-processing: ask onnxruntime once
    def image_channels(self) -> int:
        """Channels of a shallow graph's image input: 3 (RGB), or 4 where mobileinst-quantize gave an INT8
        stem a fourth, zero-weight channel (faster in INT8)."""
        return self.session.get_inputs()[0].shape[-1]

    @cached_property
    def any_size(self) -> bool:
        """Whether the first input's height and width are symbolic (the shared-shape export)."""
        return not any(isinstance(d, int) for d in self.session.get_inputs()[0].shape[1:3])

    @cached_property  # asked on every run: decide once
    def _inputs_to_size(self) -> list | None:
        """The inputs whose symbolic sizes a size-fixed session fixes; None where the file's own session serves
        (its sizes are fixed already, or fixing them does not pay)."""
        inputs = self.session.get_inputs()
        if self.role in _SIZE_FIXED_ROLES and any(isinstance(d, str) for i in inputs for d in i.shape):
            return inputs
        return None

    def _session_for(self, feeds: dict[str, np.ndarray]) -> ort.InferenceSession:
        """The session for these feeds' sizes."""
        inputs = self._inputs_to_size
        if inputs is None:
            return self.session
        key = tuple(feeds[i.name].shape for i in inputs)
        if key not in self._sized:
            options = self._options()
            for tensor in inputs:
                for dim, size in zip(tensor.shape, feeds[tensor.name].shape):
                    if isinstance(dim, str):
                        options.add_free_dimension_override_by_name(dim, size)
            self._sized[key] = cpu_session(self.path, options)
        return self._sized[key]

    def run(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by name; feeds the graph does not take (``OPTIONAL_INPUTS``) are left out."""
        feeds = {name: feeds[name] for name in self.inputs}
        values = self._session_for(feeds).run(list(self.outputs), feeds)
        outputs = dict(zip(self.outputs, values))
        _check_finite(outputs, f"{self.path.name} ({self.role})")
        return outputs


class Engine:
    """MobileInst on onnxruntime. ``resolution`` (w, h) or '640x480' fixes the model resolution;
    None picks, per image, the exported resolution closest to the image's aspect ratio.
    ``score_threshold``, ``mask_threshold``, ``max_instances``, ``duplicate_iou`` and ``split_components`` are
    plain attributes: change them at run time. Defaults come from ``model.yaml``. ``model_dir`` may also be a
    ``ModelSpec`` already made, for a subclass whose ``_load_graphs`` runs the graphs another way (training's
    ``TorchEngine``)."""

    def __init__(self, model_dir: str | Path | ModelSpec, threads: int = 1,
                 resolution: tuple[int, int] | str | None = None,
                 precision: str = "fp32", resize: str | None = None, score_threshold: float | None = None,
                 mask_threshold: float | None = None, max_instances: int | None = None,
                 duplicate_iou: float | None = None, split_components: bool | None = None) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.spec: ModelSpec = model_dir if isinstance(model_dir, ModelSpec) else load_spec(model_dir)
        d = self.spec.defaults
        self.score_threshold = float(score_threshold if score_threshold is not None else d["score_threshold"])
        self.mask_threshold = float(mask_threshold if mask_threshold is not None else d["mask_threshold"])
        self.max_instances = int(max_instances if max_instances is not None else d["max_instances"])
        self.duplicate_iou = float(duplicate_iou if duplicate_iou is not None else d["duplicate_iou"])
        self.split_components = bool(split_components if split_components is not None else d["split_components"])
        self.resize = resize or d["resize"]
        make_geometry((1, 1), (1, 1), self.resize)  # reject a bad mode now, not on the first frame
        self.precision = precision
        self.threads = threads
        cv2.setNumThreads(threads)
        # numpy's BLAS (mask matmuls) too: multi-threaded OpenBLAS took 8 ms instead of 0.4 ms for a
        # 3 x 128 x 4800 matmul on a busy 2-core machine (process-wide, like cv2.setNumThreads)
        threadpool_limits(limits=threads, user_api="blas")
        self.resolutions = self._choose_resolutions(resolution)
        self._options = partial(session_options, threads)
        self._sessions: dict[Path, _Graph] = {}  # one session per file, shared by resolutions
        self._graphs = {res: self._load_graphs(res, precision) for res in self.resolutions}
        self._shallow_context: dict[tuple[int, int], int | None] = {}

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.classes)

    def appearance(self, kernels: np.ndarray) -> np.ndarray:
        """kernels [K, D] -> their appearance part [K, D - location_terms], what association compares: a
        location prior's coefficients (model.yaml ``location_terms``) grow as 1/spread² and would swamp
        the cosine similarity."""
        return kernels[:, :kernels.shape[1] - self.spec.location_terms]

    @property
    def mask_stride(self) -> int:
        return self.spec.mask_stride

    def _choose_resolutions(self, resolution: tuple[int, int] | str | None) -> list[tuple[int, int]]:
        available = list(self.spec.graphs)
        if resolution is None:
            return available
        if isinstance(resolution, str):
            resolution = parse_resolution(resolution)
        resolution = (int(resolution[0]), int(resolution[1]))
        if resolution not in available:
            names = [f"{w}x{h}" for w, h in available]
            raise ModelLoadError(f"{self.spec.root / 'model.yaml'}: no graphs at {resolution[0]}x{resolution[1]};"
                                 f" exported resolutions: {names}")
        return [resolution]

    def _load_graphs(self, resolution: tuple[int, int], precision: str) -> dict[str, _Graph]:
        files = self.spec.graphs[resolution]
        if precision not in files:
            raise ModelLoadError(f"{self.spec.root / 'model.yaml'}: no {precision} graphs at "
                                 f"{resolution[0]}x{resolution[1]} (have {sorted(files)}; INT8 graphs come "
                                 f"from mobileinst-quantize)")
        shapes = expected_shapes(self.spec, resolution)
        graphs = {}
        for role, path in files[precision].items():
            if path not in self._sessions:
                self._sessions[path] = _Graph(path, role, self._options)
            graphs[role] = self._sessions[path]
            graphs[role].check_signature(shapes)
        if "shallow" in graphs and graphs["shallow"].image_channels not in (3, 4):
            raise ModelLoadError(f"{graphs['shallow'].path}: image input must have 3 (RGB) or 4 (RGBA) channels, "
                                 f"got {graphs['shallow'].image_channels}")
        return graphs

    def graph_inputs(self, resolution: tuple[int, int], role: str) -> tuple[str, ...]:
        """The tensor names the ``role`` graph at ``resolution`` takes (``GRAPH_IO``'s, with ``OPTIONAL_INPUTS``
        where this model's graph has them)."""
        return self._graphs[resolution][role].inputs

    def pick_resolution(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """The loaded resolution whose aspect ratio is closest to ``image_size`` (w, h) (log ratio);
        among equal aspects, the one closest in area: upsampling a small image costs time and puts
        objects at a scale the model did not see in training."""
        aspect = np.log(image_size[0] / image_size[1])
        area = np.log(image_size[0] * image_size[1])
        return min(self.resolutions, key=lambda r: (round(abs(np.log(r[0] / r[1]) - aspect), 6),
                                                    abs(np.log(r[0] * r[1]) - area)))

    def prepare(self, image: np.ndarray, resolution: tuple[int, int] | None = None) -> Prepared:
        """Check an RGB uint8 (H, W, 3) or grayscale image and letterbox it to ``resolution`` (one of
        the loaded ones; default: the closest to the image's aspect ratio)."""
        rgb = check_rgb8(image)
        image_size = (rgb.shape[1], rgb.shape[0])
        if resolution is not None and resolution not in self.resolutions:
            raise ValueError(f"resolution {resolution} is not loaded; loaded: {self.resolutions}")
        geometry = make_geometry(image_size, resolution or self.pick_resolution(image_size), self.resize)
        channels = self._graphs[geometry.input_size]["shallow"].image_channels
        return Prepared(rgb, geometry, round(self.spec.mean), channels)

    def shallow(self, prepared: Prepared) -> np.ndarray:
        """Stride-8 features x3 of one image."""
        return self._graphs[prepared.resolution]["shallow"].run(image=prepared.tensor)["x3"]

    def scaled_resolution(self, resolution: tuple[int, int], scale: float) -> tuple[int, int]:
        """``resolution`` (w, h) times ``scale``, each side rounded to the mask stride (at least one cell)."""
        stride = self.spec.mask_stride
        return tuple(max(stride, int(round(side * scale / stride)) * stride) for side in resolution)

    def shallow_any_size(self) -> bool:
        """Whether every loaded shallow graph runs at any input size (what ``shallow_scaled`` needs)."""
        return all(graphs["shallow"].any_size for graphs in self._graphs.values())

    def shallow_scaled(self, prepared: Prepared, scale: float) -> np.ndarray:
        """x3 of ``prepared``'s image run through the shallow backbone at ``scale`` times its model resolution,
        upsampled bilinearly to that resolution's stride-8 grid: a cheaper, blurrier x3 (non-keyframes,
        ``KernelTracker.non_keyframe_scale``). Needs a graph that takes any size (the shared-shape export)."""
        if scale >= 1.0:
            return self.shallow(prepared)
        size = self.scaled_resolution(prepared.resolution, scale)
        small = Prepared(prepared.rgb, make_geometry(prepared.geometry.image_size, size, self.resize),
                         prepared.pad_value, prepared.channels)
        x3 = self._graphs[prepared.resolution]["shallow"].run(image=small.tensor)["x3"]
        w, h = prepared.resolution
        stride = self.spec.mask_stride
        # cv2 resizes up to 512 channels at once in (h, w, C) layout, ~10x faster than per channel
        up = cv2.resize(np.ascontiguousarray(x3[0].transpose(1, 2, 0)), (w // stride, h // stride),
                        interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(up.reshape(h // stride, w // stride, -1).transpose(2, 0, 1))[None]

    def shallow_context(self, resolution: tuple[int, int]) -> int | None:
        """Cells of context a crop of the shallow graph needs for its inner cells to get the whole image's x3
        (``shallow_in_windows``), or None when no context up to ``MAX_SHALLOW_CONTEXT_CELLS`` does (a graph
        with a global operation, or one that sees farther). Found once per resolution's graph by running it on
        a noise image and on crops of it; needs a graph that takes any size."""
        if resolution not in self._shallow_context:
            self._shallow_context[resolution] = self._probe_context(self._graphs[resolution]["shallow"])
        return self._shallow_context[resolution]

    def _probe_context(self, shallow: _Graph) -> int | None:
        stride, most, band = self.spec.mask_stride, MAX_SHALLOW_CONTEXT_CELLS, 3
        # noise, a 2x2-cell window in the middle; around the largest crop a white band, which changes whatever a
        # global operation (a mean, a max) makes of the whole image and no crop ever sees
        cells = 2 * (most + band) + 2
        image = np.full((1, cells * stride, cells * stride, shallow.image_channels), 255, np.uint8)
        inner = slice(band * stride, (cells - band) * stride)
        image[:, inner, inner] = np.random.default_rng(0).integers(0, 256, image[:, inner, inner].shape, np.uint8)
        whole = shallow.run(image=image)["x3"]
        window = slice(most + band, most + band + 2)
        tolerance = 1e-4 * float(np.abs(whole).max())  # FP32 kernels may sum in another order on another size
        for context in range(most + 1):
            lo, hi = window.start - context, window.stop + context
            crop = shallow.run(image=np.ascontiguousarray(image[:, lo * stride:hi * stride, lo * stride:hi * stride]))
            centre = slice(context, context + 2)
            if np.abs(crop["x3"][..., centre, centre] - whole[..., window, window]).max() <= tolerance:
                return context
        return None

    def shallow_in_windows(self, prepared: Prepared, x3: np.ndarray, windows: list[Rect]) -> np.ndarray:
        """``x3`` (an earlier frame's stride-8 features at this resolution) with the cells of ``windows``
        (y0, x0, y1, x1 on the stride-8 grid) recomputed from ``prepared``'s image: the shallow backbone runs on
        each window grown by ``shallow_context`` cells, so that the window's cells come out as a whole-image run
        gives them. It costs in proportion to the area run (``KernelTracker.non_keyframe_crops``)."""
        margin = self.shallow_context(prepared.resolution)
        if margin is None:
            raise ValueError("this model's shallow graph has no finite context: it cannot run on crops")
        out = x3.copy()
        stride = self.spec.mask_stride
        shallow = self._graphs[prepared.resolution]["shallow"]
        for y0, x0, y1, x1 in windows:
            cy0, cx0, cy1, cx1 = grow_rect((y0, x0, y1, x1), margin, x3.shape[2:])
            crop = np.ascontiguousarray(prepared.tensor[:, cy0 * stride:cy1 * stride, cx0 * stride:cx1 * stride])
            part = shallow.run(image=crop)["x3"]
            out[:, :, y0:y1, x0:x1] = part[:, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        return out

    def deep(self, resolution: tuple[int, int], x3: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Deep backbone: x3 -> (x4, x5, x6)."""
        deep = self._graphs[resolution]["deep"].run(x3=x3)
        return deep["x4"], deep["x5"], deep["x6"]

    def deep_features(self, resolution: tuple[int, int], x3: np.ndarray) -> Features:
        """Deep backbone + mask decoder on x3: everything a keyframe needs before the instance decoder."""
        x4, x5, x6 = self.deep(resolution, x3)
        decoded = self._graphs[resolution]["mask_decoder"].run(x3=x3, x4=x4, x5=x5, x6=x6)
        return Features(resolution, x3, x4, x5, x6, decoded["mask_features"],
                        {name: decoded[name] for name in MASK_CONTEXT})

    def keyframe_features(self, prepared: Prepared) -> Features:
        """Full backbone + mask decoder."""
        return self.deep_features(prepared.resolution, self.shallow(prepared))

    def reuse_features(self, prepared: Prepared, keyframe: Features, x3: np.ndarray | None = None) -> Features:
        """Shallow backbone on this image (unless its ``x3`` is given), the mask decoder's stride-8 part
        on the keyframe's mask context."""
        if keyframe.resolution != prepared.resolution:
            raise ValueError(f"keyframe features are at {keyframe.resolution}, image needs {prepared.resolution}")
        x3 = self.shallow(prepared) if x3 is None else x3
        mf = self._graphs[prepared.resolution]["mask_decoder_reuse"].run(x3=x3, **keyframe.context)["mask_features"]
        return Features(prepared.resolution, x3, keyframe.x4, keyframe.x5, keyframe.x6, mf, keyframe.context)

    def decode(self, features: Features) -> dict[str, np.ndarray]:
        """Instance decoder: logits [N, C], objectness [N], kernels [N, D] (batch dropped)."""
        out = self._graphs[features.resolution]["instance_decoder"].run(
            x6=features.x6, mask_features=features.mask_features, x4=features.x4)
        return {k: v[0] for k, v in out.items()}

    def select(self, decoded: dict[str, np.ndarray], features: Features, geometry: Geometry) -> Detections:
        """Queries rescored by maskness, duplicates dropped (``duplicate_iou``); those scoring at least
        ``score_threshold`` (at most ``max_instances``). Maskness <= 1, so only queries already above the
        threshold need masks."""
        scores, class_ids = query_scores(decoded["logits"], decoded["objectness"])
        cand, final, mness, cells, logits, kept = self._rescore(scores, decoded["kernels"], features, geometry)
        keep = rank(np.where(kept, final, -1.0), self.score_threshold, self.max_instances)
        chosen = cand[keep]
        det = Detections(decoded["kernels"][chosen], class_ids[chosen], final[keep], scores[chosen],
                         mness[keep], cells[keep], logits[keep], chosen)
        return self._split(det, geometry) if self.split_components else det

    def _split(self, det: Detections, geometry: Geometry) -> Detections:
        """Every mask's connected parts as instances, rescored by their own maskness, best first; the parts
        of one mask share its kernel, class and query score."""
        stride = self.spec.mask_stride
        parts, parent = split_components(det.mask_logits, geometry, stride, self.mask_threshold)
        mness, cells = mask_stats(parts, geometry, stride, self.mask_threshold)
        final = det.query_scores[parent] * mness
        order = rank(final, self.score_threshold, self.max_instances)
        rows = parent[order]
        return Detections(det.kernels[rows], det.class_ids[rows], final[order], det.query_scores[rows],
                          mness[order], cells[order], parts[order], det.query_indices[rows])

    def _rescore(self, scores: np.ndarray, kernels: np.ndarray, features: Features,
                 geometry: Geometry) -> tuple[np.ndarray, ...]:
        """(queries, final scores, maskness, cells, mask logits, not a duplicate) of the queries that can
        still make the top ``max_instances``: taken best query score first, in chunks, until the next query
        score is below the ``max_instances``-th best final score kept (final <= query score, and only a
        better-scored mask can suppress one), so that most masks of a poorly separated decoder are never
        computed."""
        order = rank(scores, self.score_threshold, len(scores))
        mf = features.mask_features[0]
        stride = self.spec.mask_stride
        parts = [(order[:0], np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                  np.zeros((0, *mf.shape[1:]), np.float32))]
        kept = np.zeros(0, bool)
        for start in range(0, len(order), self.max_instances):
            chunk = order[start:start + self.max_instances]
            finals = np.concatenate([p[1] for p in parts])[kept]
            if len(finals) >= self.max_instances and scores[chunk[0]] < np.sort(finals)[-self.max_instances]:
                break
            logits = mask_logits(kernels[chunk], mf)
            mness, cells = mask_stats(logits, geometry, stride, self.mask_threshold)
            parts.append((chunk, scores[chunk] * mness, mness, cells, logits))
            all_logits, all_finals = (np.concatenate([p[i] for p in parts]) for i in (4, 1))
            kept = not_duplicates(all_logits, all_finals, geometry, stride, self.mask_threshold, self.duplicate_iou)
        return (*(np.concatenate(column) for column in zip(*parts)), kept)

    def detect(self, features: Features, geometry: Geometry) -> Detections:
        """Instance decoder + selection."""
        return self.select(self.decode(features), features, geometry)

    def reuse_masks(self, kernels: np.ndarray, features: Features, geometry: Geometry,
                    regions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kernels [K, D] of an earlier keyframe on these features -> (mask logits [K, h, w],
        maskness [K], cells [K]); with bool ``regions`` [K, h, w], each mask only inside its region."""
        logits = mask_logits(kernels, features.mask_features[0])
        if regions is not None:
            logits = restrict(logits, regions)
        return (logits, *mask_stats(logits, geometry, self.spec.mask_stride, self.mask_threshold))

    def to_image(self, logits: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, list[Box]]:
        """Stride-8 mask logits [K, h, w] -> (bool masks [K, H, W] at the image's resolution, their boxes
        (x, y, w, h), all zeros where empty)."""
        return masks_to_image(logits, geometry, self.spec.mask_stride, self.mask_threshold)

    def infer(self, image: np.ndarray) -> list[Instance]:
        """All instances of a single image (keyframe path, no tracking), best first; empty masks dropped."""
        prepared = self.prepare(image)
        features = self.keyframe_features(prepared)
        det = self.detect(features, prepared.geometry)
        masks, boxes = self.to_image(det.mask_logits, prepared.geometry)
        return [Instance(int(c), float(s), box, m)
                for c, s, m, box in zip(det.class_ids, det.scores, masks, boxes) if box[2]]
