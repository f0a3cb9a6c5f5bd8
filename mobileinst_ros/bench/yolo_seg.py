"""An exported Ultralytics-style YOLO-seg ONNX model run as the peer robots use today (numpy + OpenCV).

What YOLO-seg's predictor does per image, so that ``mobileinst-bench --peer`` times the whole frame:
letterbox to the graph's input size (RGB, x / 255), the network, class-aware NMS
(``cv2.dnn.NMSBoxesBatched``), mask assembly (coefficients x prototypes, crop to the box on the
prototype grid, upsample to the image, threshold 0.5).

The graph: ``images [1, 3, H, W]`` -> ``output0 [1, 4 + C + M, A]`` (cx, cy, w, h in input pixels,
C class scores after sigmoid, M mask coefficients) and ``output1 [1, M, H/4, W/4]`` (prototypes).
Outputs are found by rank, so other names work too.

With random weights (latency only) almost no anchor passes a score threshold; ``top_candidates``
anchors (the best scores, default 100, about what a busy real frame keeps above 0.25) then go to NMS
so that post-processing does a real frame's work. Masks come out at most ``max_det``.

``python -m mobileinst_ros.bench.yolo_seg quantize IN.onnx OUT.onnx`` makes the INT8 peer the same way
``mobileinst-quantize`` makes ours (static QDQ, per-channel, reduce_range), calibrated on letterboxed
frames of synthetic videos or of ``--calibration DIR`` (images). ``scripts/export_yolo_peer.sh``
exports the FP32 graphs in a scratch venv.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from mobileinst_ros.runtime.postprocess import masks_to_image
from mobileinst_ros.runtime.preprocess import Geometry, make_geometry, resize_to_content
from mobileinst_ros.runtime.sessions import cpu_session, session_options

__all__ = ["YoloSegModel", "yolo_seg_postprocess", "quantize_peer", "main"]


class YoloSegModel:
    """One YOLO-seg ONNX graph on onnxruntime (one session, ``threads`` intra-op threads)."""

    def __init__(self, path: str | Path, threads: int = 1, size: tuple[int, int] | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: peer model not found")
        try:
            self.session = cpu_session(path, session_options(threads))
        except Exception as err:  # onnxruntime raises several unrelated types for unreadable files
            raise ValueError(f"{path}: cannot load as ONNX: {str(err).strip()[:200]}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        ranks = sorted(len(o.shape) for o in outputs)
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or ranks != [3, 4]:
            raise ValueError(f"{path}: not a YOLO-seg graph: expected images [1,3,H,W] -> detections [1,4+C+M,A] "
                             f"and prototypes [1,M,h,w], got {[i.shape for i in inputs]} -> {[o.shape for o in outputs]}")
        self.path, self.input_name = path, inputs[0].name
        self.detections_name = next(o.name for o in outputs if len(o.shape) == 3)
        self.prototypes_name = next(o.name for o in outputs if len(o.shape) == 4)
        h, w = inputs[0].shape[2:]
        if size is None and not (isinstance(h, int) and isinstance(w, int)):
            raise ValueError(f"{path}: the input size is dynamic ({w}x{h}): give the size to run at")
        self.input_size: tuple[int, int] = size or (w, h)

    def prepare(self, rgb: np.ndarray) -> tuple[Geometry, np.ndarray]:
        """Letterbox (keep aspect, pad) to the input size, RGB / 255."""
        geometry = make_geometry((rgb.shape[1], rgb.shape[0]), self.input_size, "letterbox")
        (w, h), (cw, ch) = geometry.input_size, geometry.content_size
        rgb = resize_to_content(rgb, geometry)
        tensor = np.zeros((1, 3, h, w), np.float32)
        for c in range(3):  # straight from the image, one channel at a time: HWC uint8 -> CHW float
            np.subtract(rgb[:, :, c], 0.0, out=tensor[0, c, :ch, :cw], dtype=np.float32, casting="unsafe")
        tensor *= 1.0 / 255.0
        return geometry, tensor

    def run(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (detections [4 + C + M, A], prototypes [M, h, w])."""
        det, protos = self.session.run([self.detections_name, self.prototypes_name], {self.input_name: tensor})
        return det[0], protos[0]


def yolo_seg_postprocess(detections: np.ndarray, prototypes: np.ndarray, geometry: Geometry,
                         conf: float = 0.25, iou: float = 0.7, max_det: int = 10,
                         top_candidates: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLO-seg's inference on one image: (boxes [K, 4] x0, y0, x1, y1 in input pixels, class ids [K],
    bool masks [K, H, W] at the image size), best first. Anchors scoring at least ``conf`` compete;
    if fewer than ``top_candidates`` do, the best-scoring others fill up to that many (random weights)."""
    m = prototypes.shape[0]
    classes = detections.shape[0] - 4 - m
    if classes < 1:
        raise ValueError(f"detections have {detections.shape[0]} rows: fewer than 4 + 1 class + {m} coefficients")
    scores_all = detections[4:4 + classes]                          # [C, A]
    class_ids = scores_all.argmax(axis=0)
    scores = scores_all[class_ids, np.arange(scores_all.shape[1])]
    cand = np.flatnonzero(scores >= conf)
    if len(cand) < top_candidates:
        cand = np.argpartition(-scores, min(top_candidates, len(scores)) - 1)[:top_candidates]
    xywh = detections[:4, cand].T.copy()
    xywh[:, :2] -= xywh[:, 2:] / 2                                   # top-left corner for OpenCV
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores[cand].tolist(), class_ids[cand].tolist(),
                                   0.0, iou, top_k=max_det)
    keep = cand[np.asarray(keep, np.int64).reshape(-1)][:max_det]
    boxes = detections[:4, keep].T
    boxes = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
    _, ph, pw = prototypes.shape
    stride = geometry.input_size[1] / ph
    logits = (detections[4 + classes:, keep].T @ prototypes.reshape(m, ph * pw)).reshape(-1, ph, pw)
    # crop to the box on the prototype grid (cell centres), as Ultralytics' process_mask
    ys = (np.arange(ph, dtype=np.float32)[None, :, None] + 0.5) * stride
    xs = (np.arange(pw, dtype=np.float32)[None, None, :] + 0.5) * stride
    inside = ((xs >= boxes[:, 0, None, None]) & (xs <= boxes[:, 2, None, None]) &
              (ys >= boxes[:, 1, None, None]) & (ys <= boxes[:, 3, None, None]))
    logits = np.where(inside, logits, np.float32(-50.0)).astype(np.float32)
    return boxes, class_ids[keep], masks_to_image(logits, geometry, int(round(stride)), 0.5)[0]


def _calibration_frames(root: Path | None, count: int) -> list[np.ndarray]:
    if root is not None:
        from mobileinst_ros.export.quantize import calibration_images

        return [frame for frame, _ in calibration_images(root, count)]
    from mobileinst_ros.data.synth import generate_video

    per_video = 4
    return [frame for i in range(-(-count // per_video))
            for frame in generate_video(seed=7, index=i, frames=per_video, width=640, height=480).frames][:count]


def quantize_peer(src: str | Path, dst: str | Path, calibration: Path | None = None, count: int = 16) -> None:
    """An FP32 YOLO-seg graph -> INT8 QDQ graph (the recipe of ``mobileinst-quantize``)."""
    from mobileinst_ros.export.quantize import quantize_file

    model = YoloSegModel(src)
    feeds = [{model.input_name: model.prepare(frame)[1]} for frame in _calibration_frames(calibration, count)]
    quantize_file(Path(src), Path(dst), feeds, "minmax", [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobileinst_ros.bench.yolo_seg",
                                     description="INT8 copy of a YOLO-seg peer graph for mobileinst-bench --peer")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quantize", help="static INT8 QDQ, per-channel, calibrated on letterboxed frames")
    q.add_argument("src", type=Path)
    q.add_argument("dst", type=Path)
    q.add_argument("--calibration", type=Path, help="image folder (default: synthetic video frames)")
    q.add_argument("--frames", type=int, default=16)
    args = parser.parse_args(argv)
    try:
        quantize_peer(args.src, args.dst, args.calibration, args.frames)
    except ValueError as err:
        print(f"yolo_seg: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
