"""mobileinst-bench --peer: a YOLO-seg-shaped ONNX graph timed beside MobileInst, its NMS and masks."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mobileinst_ros.bench.bench import main as bench_main
from mobileinst_ros.bench.yolo_seg import YoloSegModel, yolo_seg_postprocess
from mobileinst_ros.runtime.preprocess import make_geometry

CLASSES, COEFFS = 3, 4


def tiny_yolo_seg(path, width=640, height=480):
    """images [1,3,H,W] -> output0 [1, 4+C+M, (H/32)*(W/32)] (boxes in pixels, scores in [0, 1]) and
    output1 [1, M, H/4, W/4]: the shapes and ranges of an Ultralytics YOLO-seg export."""
    rows = 4 + CLASSES + COEFFS
    rng = np.random.default_rng(0)
    scale = np.ones((1, rows, 1), np.float32)
    scale[0, :4, 0] = (width, height, width / 4, height / 4)
    inits = [numpy_helper.from_array(rng.normal(0, 0.1, (rows, 3, 32, 32)).astype(np.float32), "w_det"),
             numpy_helper.from_array(np.array([1, rows, -1], np.int64), "det_shape"),
             numpy_helper.from_array(scale, "det_scale"),
             numpy_helper.from_array(rng.normal(0, 1, (COEFFS, 3, 1, 1)).astype(np.float32), "w_proto")]
    nodes = [helper.make_node("Conv", ["images", "w_det"], ["det_map"], strides=[32, 32]),
             helper.make_node("Reshape", ["det_map", "det_shape"], ["det_flat"]),
             helper.make_node("Sigmoid", ["det_flat"], ["det_prob"]),
             helper.make_node("Mul", ["det_prob", "det_scale"], ["output0"]),
             helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Conv", ["pooled", "w_proto"], ["output1"])]
    graph = helper.make_graph(
        nodes, "tiny_yolo_seg", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, rows, (height // 32) * (width // 32)]),
         helper.make_tensor_value_info("output1", TensorProto.FLOAT, [1, COEFFS, height // 4, width // 4])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_nms_keeps_the_best_of_overlapping_boxes_and_crops_masks_to_them():
    rows, anchors = 4 + CLASSES + COEFFS, 3
    det = np.zeros((rows, anchors), np.float32)
    det[:4, 0] = (20, 20, 20, 20)       # box 10..30
    det[:4, 1] = (21, 21, 20, 20)       # overlaps box 0, same class, lower score: suppressed
    det[:4, 2] = (50, 50, 10, 10)       # elsewhere
    det[4, :] = (0.9, 0.8, 0.0)
    det[5, 2] = 0.7
    det[4 + CLASSES, :] = 1.0           # coefficient 0 on the one prototype that is positive everywhere
    protos = np.zeros((COEFFS, 16, 16), np.float32)
    protos[0] = 5.0
    boxes, classes, masks = yolo_seg_postprocess(det, protos, make_geometry((64, 64), (64, 64), "letterbox"),
                                                 conf=0.25, top_candidates=0)
    assert classes.tolist() == [0, 1]
    assert np.allclose(boxes[0], (10, 10, 30, 30))
    assert masks.shape == (2, 64, 64)
    ys, xs = np.nonzero(masks[0])
    assert 8 <= xs.min() and xs.max() <= 32 and 8 <= ys.min() and ys.max() <= 32 and masks[0, 14:26, 14:26].all()
    assert masks[1, 47:53, 47:53].all() and not masks[1, :40].any()


def test_a_graph_without_prototypes_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                                opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    with pytest.raises(ValueError, match="not a YOLO-seg graph"):
        YoloSegModel(path)


def test_bench_times_a_peer_graph_in_the_same_rounds_and_reports_ratios(tmp_path, capsys):
    peer = tiny_yolo_seg(tmp_path / "tiny.onnx")
    out = tmp_path / "bench.json"
    code = bench_main(["--model", "models/default", "--resolution", "640x480", "--rounds", "1", "--warmup", "0",
                       "--frames", "3", "--no-int8", "--no-peers", "--peer", f"tiny={peer}", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    tiny = result["peers_ms"]["640x480"]["tiny"]
    assert tiny["frames"] == 3 and tiny["mean"] > 0 and tiny["backbone"] > 0 and tiny["postprocess"] > 0
    t1 = result["latency_ms"]["640x480"]["fp32"]["T1"]["mean"]
    assert result["ratios"]["fp32_T1_over_tiny"] == pytest.approx(t1 / tiny["mean"], rel=1e-2)
    assert result["ratios"]["int8_T1_over_tiny"] is None          # no INT8 run
    assert "fp32_T3_over_tiny <= 0.45" in result["targets"]
    assert result["ratios_cpu_time"]["fp32_T1_over_tiny"] > 0   # CPU time: immune to other processes
    assert "tiny" in capsys.readouterr().out


def test_bad_peer_argument_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench_main(["--peer", "no-equals-sign"])
    assert "NAME=PATH" in capsys.readouterr().err
