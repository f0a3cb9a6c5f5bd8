"""python -m mobileinst_ros.bench.profile: FLOPs of executed nodes and per-node times from onnxruntime."""
import numpy as np

from mobileinst_ros.bench.profile import _by_op, node_flops, profile_graph
from test_bench_yolo_peer import tiny_yolo_seg


def test_flops_of_convolutions_and_matrix_products():
    # 3x3 conv 16 -> 32 on a 10 x 10 output: 2 x 32 x 100 x 16 x 9
    assert node_flops("Conv", [[1, 16, 10, 10], [32, 16, 3, 3]], [[1, 32, 10, 10]]) == 2 * 32 * 100 * 16 * 9
    # depthwise: one input channel per output channel
    assert node_flops("FusedConv", [[1, 8, 4, 4], [8, 1, 3, 3]], [[1, 8, 4, 4]]) == 2 * 8 * 16 * 9
    assert node_flops("MatMul", [[1, 100, 128], [128, 64]], [[1, 100, 64]]) == 2 * 100 * 64 * 128
    assert node_flops("Relu", [[1, 8]], [[1, 8]]) == 0.0


def test_profile_reports_every_kernel_with_its_flops(tmp_path):
    path = tiny_yolo_seg(tmp_path / "tiny.onnx", width=128, height=64)
    nodes = profile_graph(path, {"images": np.zeros((1, 3, 64, 128), np.float32)}, runs=3)
    ops = _by_op(nodes)
    assert sum(o["nodes"] for o in ops.values()) == len(nodes) >= 4
    assert all(n["ms"] >= 0 for n in nodes)
    # the two convolutions: 11 x 3 x 32 x 32 weights on a 2 x 4 grid, 4 x 3 x 1 x 1 on 16 x 32; FLOPs are
    # as executed: x86's NCHWc layout pads output channels to a multiple of its block (at most 16)
    nominal = 2 * 11 * 8 * 3 * 32 * 32 + 2 * 4 * 16 * 32 * 3
    padded = 2 * 16 * 8 * 3 * 32 * 32 + 2 * 16 * 16 * 32 * 3
    assert nominal <= sum(n["flops"] for n in nodes) <= padded
