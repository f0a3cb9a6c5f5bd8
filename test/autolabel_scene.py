"""Test material for mobileinst-autolabel: a real (tiny) ONNX detector and scenes it can see.

``write_red_detector`` builds, with onnx.helper, a detector that finds the red pixels of its input and
answers one box around them (x1, y1, x2, y2 in input pixels) with scores [background-ish, red]: a
``boxes_scores`` teacher whose output depends on the image, run by onnxruntime as a real teacher is.
``red_disc_frames`` renders a red disc moving over a textured background, with its exact masks.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper

SIZE = 64  # detector input


def write_red_detector(path: Path, size: int = SIZE) -> Path:
    """ONNX: images [1,3,size,size] float (0-1) -> boxes [1,1,4], scores [1,1,2]."""
    def const(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name, TensorProto.FLOAT if value.dtype == np.float32 else TensorProto.INT64, value.shape,
            value.flatten().tolist()))

    big = np.float32(1e4)
    nodes = [
        const("zero", np.array([0], np.int64)), const("one", np.array([1], np.int64)),
        const("two", np.array([2], np.int64)), const("three", np.array([3], np.int64)),
        const("half", np.array(0.5, np.float32)), const("quarter", np.array(0.35, np.float32)),
        const("big", np.array(big, np.float32)), const("one_f", np.array(1.0, np.float32)),
        const("xs", np.arange(size, dtype=np.float32).reshape(1, size)),
        const("ys", np.arange(size, dtype=np.float32).reshape(size, 1)),
        const("box_shape", np.array([1, 1, 4], np.int64)), const("score_shape", np.array([1, 1, 2], np.int64)),
        helper.make_node("Slice", ["images", "zero", "one", "one"], ["r"]),
        helper.make_node("Slice", ["images", "one", "two", "one"], ["g"]),
        helper.make_node("Slice", ["images", "two", "three", "one"], ["b"]),
        helper.make_node("Max", ["g", "b"], ["gb"]),
        helper.make_node("Sub", ["r", "gb"], ["redness"]),
        helper.make_node("Greater", ["redness", "quarter"], ["is_red_b"]),
        helper.make_node("Cast", ["is_red_b"], ["is_red4"], to=TensorProto.FLOAT),
        const("hw_shape", np.array([size, size], np.int64)),
        helper.make_node("Reshape", ["is_red4", "hw_shape"], ["m"]),  # [H,W]
        helper.make_node("ReduceMax", ["m", "zero"], ["col_any"], keepdims=1),  # [1,W]
        helper.make_node("ReduceMax", ["m", "one"], ["row_any"], keepdims=1),  # [H,1]
        helper.make_node("Mul", ["col_any", "xs"], ["x_on"]),
        helper.make_node("Mul", ["row_any", "ys"], ["y_on"]),
        helper.make_node("ReduceMax", ["x_on"], ["x2m"], keepdims=0),
        helper.make_node("ReduceMax", ["y_on"], ["y2m"], keepdims=0),
        helper.make_node("Sub", ["one_f", "col_any"], ["col_off"]),
        helper.make_node("Sub", ["one_f", "row_any"], ["row_off"]),
        helper.make_node("Mul", ["col_off", "big"], ["col_pen"]),
        helper.make_node("Mul", ["row_off", "big"], ["row_pen"]),
        helper.make_node("Add", ["xs", "col_pen"], ["x_pen"]),
        helper.make_node("Add", ["ys", "row_pen"], ["y_pen"]),
        helper.make_node("ReduceMin", ["x_pen"], ["x1"], keepdims=0),
        helper.make_node("ReduceMin", ["y_pen"], ["y1"], keepdims=0),
        helper.make_node("Add", ["x2m", "one_f"], ["x2"]),
        helper.make_node("Add", ["y2m", "one_f"], ["y2"]),
        helper.make_node("ReduceMax", ["m"], ["found"], keepdims=0),
        helper.make_node("Mul", ["found", "half"], ["score_half"]),
        helper.make_node("Add", ["score_half", "half"], ["red_score_raw"]),
        helper.make_node("Mul", ["red_score_raw", "found"], ["red_score"]),
        helper.make_node("Sub", ["one_f", "red_score"], ["other_score"]),
        helper.make_node("Unsqueeze", ["x1", "zero"], ["x1u"]),
        helper.make_node("Unsqueeze", ["y1", "zero"], ["y1u"]),
        helper.make_node("Unsqueeze", ["x2", "zero"], ["x2u"]),
        helper.make_node("Unsqueeze", ["y2", "zero"], ["y2u"]),
        helper.make_node("Concat", ["x1u", "y1u", "x2u", "y2u"], ["box4"], axis=0),
        helper.make_node("Reshape", ["box4", "box_shape"], ["boxes"]),
        helper.make_node("Unsqueeze", ["other_score", "zero"], ["s0"]),
        helper.make_node("Unsqueeze", ["red_score", "zero"], ["s1"]),
        helper.make_node("Concat", ["s0", "s1"], ["s2"], axis=0),
        helper.make_node("Reshape", ["s2", "score_shape"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "red_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 1, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def red_detector_spec(directory: Path, **changes: object) -> Path:
    """A spec for the red detector in ``directory`` (file next to it); ``changes`` override top-level keys."""
    spec = {
        "name": "red", "licence": "test", "file": "red.onnx",
        "input": {"name": "images", "width": SIZE, "height": SIZE, "layout": "NCHW", "channels": "RGB",
                  "resize": "stretch", "scale": 1 / 255, "offset": 0.0},
        "decoding": {"type": "boxes_scores", "boxes": "boxes", "scores": "scores", "box_format": "xyxy",
                     "score_activation": "none"},
        "class_names": ["other", "red thing"],
        "class_map": {"red thing": "disc"},
        "nms_iou": 0.5,
    }
    spec.update(changes)
    path = directory / "red.yaml"
    path.write_text(yaml.safe_dump(spec))
    if not (directory / "red.onnx").exists():
        write_red_detector(directory / "red.onnx")
    return path


def red_disc_frames(count: int = 8, width: int = 128, height: int = 96, seed: int = 0
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RGB frames of a red disc moving right over grey-green texture, and its exact bool masks."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    texture[..., 1] = np.clip(texture[..., 1].astype(int) + 40, 0, 255)
    texture = cv2.GaussianBlur(texture, (5, 5), 0)
    frames, masks = [], []
    for t in range(count):
        frame = texture.copy()
        mask = np.zeros((height, width), np.uint8)
        cv2.circle(mask, (30 + 6 * t, height // 2), 16, 1, -1)
        frame[mask > 0] = (220, 30, 30)
        frames.append(frame)
        masks.append(mask.astype(bool))
    return frames, masks


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Frames as an MJPG .avi (what a user's camera recording might be)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path
