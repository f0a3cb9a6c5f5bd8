"""Teachers: ONNX detectors described by a YAML spec, run with onnxruntime (torch-free).

A spec (``config/teachers/<name>.yaml``) says where the ONNX file is and how to feed and read it:

```yaml
name: my_yolo
licence: AGPL-3.0            # what the teacher's weights are under (goes into the dataset's info)
source: how the file was made
file: my_yolo.onnx           # relative to --teacher-dir/<name>/ (or absolute)
sha256: ...                  # optional: the file must have this hash
input:
  name: images
  width: 640
  height: 640
  layout: NCHW               # or NHWC
  channels: RGB              # or BGR
  resize: letterbox          # or stretch
  scale: 0.00392156862745098 # pixel * scale + offset (after mean/std: (pixel - mean) / std when given)
  offset: 0.0
decoding:
  type: boxes_scores         # or ssd (anchors + box coder, e.g. TF object-detection SSDs)
  boxes: boxes               # output name: [1, N, 4] (or [1, 4, N] with transpose: true)
  scores: scores             # output name: [1, N, C]; may equal boxes for one [1, N, 4 + C] output
  box_format: cxcywh         # xyxy, cxcywh (boxes_scores), in input pixels or normalized (normalized: true)
  score_activation: none     # none, sigmoid or softmax
  background_class: null     # index of a background column to drop (SSD: 0)
class_names: [person, bicycle, ...]   # one per score column (background included where there is one)
class_map: {person: person, bicycle: bicycle}   # teacher class -> training class; others are dropped
nms_iou: 0.5
tiles: [[1, 1]]              # run on the whole frame, and on extra (columns, rows) grids of tiles
```

``load_teacher(spec_path, teacher_dir)`` checks the spec, the file (present, hash, inputs and outputs
of the right names and shapes) and raises ``TeacherError`` naming the spec and the thing that is wrong.
``Teacher.detect(rgb)`` returns boxes in the frame's pixels (x1, y1, x2, y2), scores and training-class
indices after per-class NMS.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

__all__ = ["Detections", "Teacher", "TeacherError", "TeacherSpec", "load_spec", "load_teacher", "ssd_anchors"]

DECODINGS = ("ssd", "boxes_scores")
ACTIVATIONS = ("none", "sigmoid", "softmax")


class TeacherError(ValueError):
    """A teacher spec or file that cannot be used; the text names the spec file and what is wrong."""


@dataclass(frozen=True)
class Detections:
    """Detections of one frame: ``boxes`` [N,4] float32 x1,y1,x2,y2 in frame pixels, ``scores`` [N],
    ``labels`` [N] int64 indices into the teacher's ``training_classes``."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclass
class TeacherSpec:
    """A parsed, checked teacher spec (see the module docstring for the YAML)."""

    path: Path
    name: str
    licence: str
    source: str
    file: str
    sha256: str | None
    input: dict[str, Any]
    decoding: dict[str, Any]
    class_names: list[str]
    class_map: dict[str, str]
    nms_iou: float = 0.5
    tiles: list[tuple[int, int]] = field(default_factory=lambda: [(1, 1)])

    @property
    def training_classes(self) -> list[str]:
        """The training classes this teacher labels, in first-mapped order."""
        return list(dict.fromkeys(self.class_map.values()))

    def model_path(self, teacher_dir: str | Path | None) -> Path:
        path = Path(self.file)
        if path.is_absolute():
            return path
        base = Path(teacher_dir) / self.name if teacher_dir is not None else self.path.parent
        return base / path


def _need(data: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise TeacherError(f"{where}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TeacherError(f"{where}: {key!r} must be {names}, got {value!r:.60}")
    return value


def _choice(data: dict, key: str, choices: tuple[str, ...], default: str, where: str) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise TeacherError(f"{where}: {key!r} is {value!r}; expected one of {', '.join(choices)}")
    return value


def load_spec(path: str | Path) -> TeacherSpec:
    """Read and check a teacher spec YAML (not the ONNX file: ``load_teacher`` does that)."""
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"{path}: teacher spec not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise TeacherError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise TeacherError(f"{path}: expected a mapping with name, file, input, decoding, class_names")
    where = str(path)
    inp = _need(data, "input", dict, where)
    for key in ("width", "height"):
        if not isinstance(inp.get(key), int) or inp[key] <= 0:
            raise TeacherError(f"{where}: input.{key} must be a positive integer, got {inp.get(key)!r}")
    _need(inp, "name", str, f"{where}: input")
    _choice(inp, "layout", ("NCHW", "NHWC"), "NCHW", f"{where}: input")
    _choice(inp, "channels", ("RGB", "BGR"), "RGB", f"{where}: input")
    _choice(inp, "resize", ("stretch", "letterbox"), "stretch", f"{where}: input")
    for key in ("mean", "std"):
        if key in inp and (not isinstance(inp[key], list) or len(inp[key]) != 3):
            raise TeacherError(f"{where}: input.{key} must be a list of 3 numbers (per channel)")
    dec = _need(data, "decoding", dict, where)
    kind = _choice(dec, "type", DECODINGS, "", f"{where}: decoding")
    _choice(dec, "score_activation", ACTIVATIONS, "none", f"{where}: decoding")
    _need(dec, "boxes", str, f"{where}: decoding")
    _need(dec, "scores", str, f"{where}: decoding")
    if kind == "ssd":
        anchors = _need(dec, "anchors", dict, f"{where}: decoding")
        for key in ("min_scale", "max_scale", "feature_maps", "aspect_ratios"):
            _need(anchors, key, (int, float, list), f"{where}: decoding.anchors")
        coder = _need(dec, "box_coder", dict, f"{where}: decoding")
        for key in ("y_scale", "x_scale", "h_scale", "w_scale"):
            _need(coder, key, (int, float), f"{where}: decoding.box_coder")
    else:
        _choice(dec, "box_format", ("xyxy", "cxcywh"), "xyxy", f"{where}: decoding")
    names = _need(data, "class_names", list, where)
    if not names or not all(isinstance(n, str) for n in names):
        raise TeacherError(f"{where}: class_names must be a non-empty list of strings")
    background = dec.get("background_class")
    if background is not None and not (isinstance(background, int) and 0 <= background < len(names)):
        raise TeacherError(f"{where}: decoding.background_class {background!r} is not a column of class_names")
    class_map = _need(data, "class_map", dict, where)
    if not class_map:
        raise TeacherError(f"{where}: class_map is empty: no teacher class becomes a training class")
    unknown = [k for k in class_map if k not in names]
    if unknown:
        raise TeacherError(f"{where}: class_map names classes the teacher does not have: {unknown}")
    tiles = data.get("tiles", [[1, 1]])
    if (not isinstance(tiles, list) or not tiles
            or not all(isinstance(t, list) and len(t) == 2 and all(isinstance(v, int) and v >= 1 for v in t)
                       for t in tiles)):
        raise TeacherError(f"{where}: tiles must be a list of [columns, rows] pairs of positive integers")
    sha = data.get("sha256")
    return TeacherSpec(path=path, name=str(_need(data, "name", str, where)),
                       licence=str(_need(data, "licence", str, where)), source=str(data.get("source", "")),
                       file=str(_need(data, "file", str, where)), sha256=str(sha) if sha else None,
                       input=inp, decoding=dec, class_names=list(names),
                       class_map={str(k): str(v) for k, v in class_map.items()},
                       nms_iou=float(data.get("nms_iou", 0.5)), tiles=[tuple(t) for t in tiles])


def ssd_anchors(min_scale: float, max_scale: float, feature_maps: list[int], aspect_ratios: list[float],
                reduce_boxes_in_lowest_layer: bool = True, interpolated_scale_aspect_ratio: float = 1.0,
                **_: Any) -> np.ndarray:
    """Anchors [N,4] (cy, cx, h, w), normalized, of the TF object-detection SSD anchor generator
    (``ssd_anchor_generator.create_ssd_anchors``, MediaPipe's ``SsdAnchorsCalculator``): per layer,
    cells row-major, then the anchor types of the cell."""
    layers = len(feature_maps)
    scales = [min_scale + (max_scale - min_scale) * i / max(layers - 1, 1) for i in range(layers)] + [1.0]
    out = []
    for layer, size in enumerate(feature_maps):
        if layer == 0 and reduce_boxes_in_lowest_layer:
            types = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            types = [(scales[layer], ar) for ar in aspect_ratios]
            if interpolated_scale_aspect_ratio > 0:
                types.append((float(np.sqrt(scales[layer] * scales[layer + 1])), interpolated_scale_aspect_ratio))
        for y in range(size):
            for x in range(size):
                for scale, ratio in types:
                    r = np.sqrt(ratio)
                    out.append(((y + 0.5) / size, (x + 0.5) / size, scale / r, scale * r))
    return np.asarray(out, np.float32)


def _activate(scores: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-scores))
    if activation == "softmax":
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return scores


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Teacher:
    """An ONNX detector run as its spec says (one onnxruntime thread by default)."""

    def __init__(self, spec: TeacherSpec, model_path: Path, threads: int = 1) -> None:
        from mobileinst_ros.runtime.sessions import cpu_session, session_options

        self.spec = spec
        self.model_path = model_path
        where = f"{spec.path}: teacher file {model_path}"
        if not model_path.is_file():
            raise TeacherError(f"{where} not found; run scripts/fetch_teachers.sh (or point --teacher-dir at it)")
        self.file_hash = file_sha256(model_path)
        if spec.sha256 and spec.sha256 != self.file_hash:
            raise TeacherError(f"{where}: sha256 {self.file_hash} does not match the spec's {spec.sha256}")
        try:
            self.session = cpu_session(model_path, session_options(threads))
        except Exception as error:  # noqa: BLE001  (onnxruntime raises its own assorted types)
            raise TeacherError(f"{where}: not a loadable ONNX model ({type(error).__name__}: {error})") from None
        self._check_graph(where)
        dec = spec.decoding
        self.anchors = ssd_anchors(**dec["anchors"]) if dec["type"] == "ssd" else None
        if self.anchors is not None and self.num_boxes not in (None, len(self.anchors)):
            raise TeacherError(f"{where}: the graph gives {self.num_boxes} boxes, the spec's anchors are "
                               f"{len(self.anchors)}")
        train = spec.training_classes
        self.column_class = np.array([train.index(spec.class_map[n]) if n in spec.class_map else -1
                                      for n in spec.class_names], np.int64)
        if dec.get("background_class") is not None:
            self.column_class[dec["background_class"]] = -1  # never a detection, even if mapped
        self.hash = hashlib.sha256((self.file_hash + yaml.safe_dump(
            {k: getattr(spec, k) for k in ("input", "decoding", "class_names", "class_map", "nms_iou")})
            + repr(spec.tiles)).encode()).hexdigest()[:16]

    @property
    def training_classes(self) -> list[str]:
        return self.spec.training_classes

    def _check_graph(self, where: str) -> None:
        spec = self.spec
        inputs = {i.name: i for i in self.session.get_inputs()}
        name = spec.input["name"]
        if name not in inputs:
            raise TeacherError(f"{where}: no input {name!r}; the graph's inputs are {list(inputs)}")
        shape = inputs[name].shape
        w, h = spec.input["width"], spec.input["height"]
        expected = [1, 3, h, w] if spec.input.get("layout", "NCHW") == "NCHW" else [1, h, w, 3]
        if len(shape) != 4 or any(isinstance(s, int) and s != e for s, e in zip(shape, expected)):
            raise TeacherError(f"{where}: input {name!r} has shape {shape}, the spec says "
                               f"{spec.input.get('layout', 'NCHW')} {expected}")
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        dec = spec.decoding
        for key in ("boxes", "scores"):
            if dec[key] not in outputs:
                raise TeacherError(f"{where}: no output {dec[key]!r} (decoding.{key}); the graph's outputs "
                                   f"are {list(outputs)}")
        scores_shape = outputs[dec["scores"]]
        columns = scores_shape[1 if dec.get("transpose") else -1]
        if dec["scores"] == dec["boxes"] and isinstance(columns, int):
            columns -= 4
        if isinstance(columns, int) and columns != len(spec.class_names):
            raise TeacherError(f"{where}: output {dec['scores']!r} has {columns} class columns, the spec names "
                               f"{len(spec.class_names)} classes")
        boxes_shape = outputs[dec["boxes"]]
        n = boxes_shape[-1 if dec.get("transpose") else -2] if len(boxes_shape) >= 2 else None
        self.num_boxes = n if isinstance(n, int) else None

    def _prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
        """The network input, and (sx, sy, dx, dy) mapping input pixels back to ``rgb`` pixels."""
        inp = self.spec.input
        w, h = inp["width"], inp["height"]
        ih, iw = rgb.shape[:2]
        if inp.get("resize", "stretch") == "letterbox":
            s = min(w / iw, h / ih)
            nw, nh = max(round(iw * s), 1), max(round(ih * s), 1)
            canvas = np.full((h, w, 3), 114, np.uint8)
            dx, dy = (w - nw) // 2, (h - nh) // 2
            canvas[dy:dy + nh, dx:dx + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
            image, mapping = canvas, (1 / s, 1 / s, -dx / s, -dy / s)
        else:
            image = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            mapping = (iw / w, ih / h, 0.0, 0.0)
        if inp.get("channels", "RGB") == "BGR":
            image = image[..., ::-1]
        x = image.astype(np.float32)
        if "mean" in inp:
            x = (x - np.asarray(inp["mean"], np.float32)) / np.asarray(inp.get("std", [1, 1, 1]), np.float32)
        x = x * float(inp.get("scale", 1.0)) + float(inp.get("offset", 0.0))
        x = x[None] if inp.get("layout", "NCHW") == "NHWC" else x.transpose(2, 0, 1)[None]
        return np.ascontiguousarray(x), *mapping

    def _decode(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes [N,4] x1,y1,x2,y2 in network-input pixels and class scores [N,C] (activated)."""
        dec = self.spec.decoding
        w, h = self.spec.input["width"], self.spec.input["height"]
        raw_boxes, raw_scores = outputs[dec["boxes"]], outputs[dec["scores"]]
        if dec.get("transpose"):
            raw_boxes, raw_scores = np.swapaxes(raw_boxes, -1, -2), np.swapaxes(raw_scores, -1, -2)
        raw_boxes = raw_boxes.reshape(-1, raw_boxes.shape[-1]).astype(np.float32)
        raw_scores = raw_scores.reshape(-1, raw_scores.shape[-1]).astype(np.float32)
        if dec["scores"] == dec["boxes"]:
            raw_boxes, raw_scores = raw_boxes[:, :4], raw_scores[:, 4:]
        scores = _activate(raw_scores, dec.get("score_activation", "none"))
        if dec["type"] == "ssd":
            c = dec["box_coder"]
            a = self.anchors
            cy = raw_boxes[:, 0] / c["y_scale"] * a[:, 2] + a[:, 0]
            cx = raw_boxes[:, 1] / c["x_scale"] * a[:, 3] + a[:, 1]
            bh = np.exp(np.clip(raw_boxes[:, 2] / c["h_scale"], -10, 10)) * a[:, 2]
            bw = np.exp(np.clip(raw_boxes[:, 3] / c["w_scale"], -10, 10)) * a[:, 3]
            boxes = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)
        else:
            b = raw_boxes
            if dec.get("box_format", "xyxy") == "cxcywh":
                b = np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2,
                              b[:, 1] + b[:, 3] / 2], 1)
            boxes = b * np.array([w, h, w, h], np.float32) if dec.get("normalized") else b
        return boxes.astype(np.float32), scores

    def _run(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, sx, sy, dx, dy = self._prepare(rgb)
        names = [self.spec.decoding["boxes"], self.spec.decoding["scores"]]
        values = self.session.run(list(dict.fromkeys(names)), {self.spec.input["name"]: x})
        boxes, scores = self._decode(dict(zip(dict.fromkeys(names), values)))
        boxes = boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([dx, dy, dx, dy], np.float32)
        return boxes, scores

    def detect(self, rgb: np.ndarray, min_score: float = 0.05) -> Detections:
        """Detections of mapped classes with score >= ``min_score``, after per-class NMS, over the
        whole frame and the spec's tiles (tiles overlap by a quarter; boxes cut by a tile edge that is
        not the frame's are dropped, since the whole frame or a neighbour sees them whole)."""
        ih, iw = rgb.shape[:2]
        all_boxes, all_scores, all_labels = [], [], []
        for cols, rows in self.spec.tiles:
            tw, th = iw / (cols - (cols - 1) * 0.25), ih / (rows - (rows - 1) * 0.25)
            for r in range(rows):
                for c in range(cols):
                    x0, y0 = round(c * tw * 0.75), round(r * th * 0.75)
                    x1, y1 = min(round(x0 + tw), iw), min(round(y0 + th), ih)
                    boxes, scores = self._run(rgb[y0:y1, x0:x1])
                    boxes += np.array([x0, y0, x0, y0], np.float32)
                    keep = np.ones(len(boxes), bool)
                    margin = 2.0
                    if x0 > 0:
                        keep &= boxes[:, 0] > x0 + margin
                    if y0 > 0:
                        keep &= boxes[:, 1] > y0 + margin
                    if x1 < iw:
                        keep &= boxes[:, 2] < x1 - margin
                    if y1 < ih:
                        keep &= boxes[:, 3] < y1 - margin
                    mapped = self.column_class >= 0
                    s = np.where(mapped[None], scores, 0.0)[keep]
                    best = s.argmax(1)
                    top = s[np.arange(len(s)), best]
                    sel = top >= min_score
                    all_boxes.append(boxes[keep][sel])
                    all_scores.append(top[sel])
                    all_labels.append(self.column_class[best[sel]])
        boxes = np.concatenate(all_boxes)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, iw)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, ih)
        scores, labels = np.concatenate(all_scores).astype(np.float32), np.concatenate(all_labels)
        valid = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        keep = []
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes[idx]]
            kept = cv2.dnn.NMSBoxes(xywh, scores[idx].tolist(), min_score, self.spec.nms_iou)
            keep.extend(idx[np.asarray(kept, np.int64).reshape(-1)])
        keep = np.asarray(sorted(keep, key=lambda i: -scores[i]), np.int64)
        if not len(keep):
            return Detections.empty()
        return Detections(boxes[keep].astype(np.float32), scores[keep], labels[keep].astype(np.int64))


def load_teacher(spec_path: str | Path, teacher_dir: str | Path | None = None, threads: int = 1) -> Teacher:
    """A checked teacher: the spec and its ONNX file (``teacher_dir/<name>/<file>``; without
    ``teacher_dir`` next to the spec)."""
    spec = load_spec(spec_path)
    return Teacher(spec, spec.model_path(teacher_dir), threads)
