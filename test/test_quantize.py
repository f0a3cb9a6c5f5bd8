"""mobileinst-quantize: INT8 graph sets chosen per graph by measured speed and accuracy."""
import shutil

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from mobileinst_ros.data.synth import generate_video
from mobileinst_ros.export.export import export_model
from mobileinst_ros.export.quantize import (_stem_convs, calibration_images, collect_inputs, main, quantize_file,
                                           quantize_graph, quantize_model)
from mobileinst_ros.model import build_model
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.runtime.model_dir import GRAPHS


@pytest.fixture(scope="module")
def fp32_dir(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model({"backbone": {"pretrained": False}}, 3).eval()
    out = tmp_path_factory.mktemp("q") / "model"
    export_model(model, ["a", "b", "c"], out, [(64, 64)], layout="per-resolution")
    return out


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    for v in range(2):
        folder = root / "JPEGImages" / f"video{v}"
        folder.mkdir(parents=True)
        for t, rgb in enumerate(generate_video(3, v, 4, 96, 64).frames):
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root


def fresh_copy(src, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst


def test_calibration_pairs_frames_with_a_later_frame_of_the_same_video(calib_dir):
    pairs = calibration_images(calib_dir, 8)
    assert len(pairs) == 8 and pairs[0][0].shape == (64, 96, 3)
    assert pairs[0][1] is not None          # frame 0 of video0 has frame 2
    assert pairs[-1][1] is None             # the last frame has no later frame


@pytest.fixture(scope="module")
def quantized(fp32_dir, calib_dir, tmp_path_factory):
    model_dir = fresh_copy(fp32_dir, tmp_path_factory.mktemp("int8"))
    record = quantize_model(model_dir, calibration_images(calib_dir, 4), min_cosine=0.0, repeats=1,
                            search_below=0.0, log=lambda _: None)
    return model_dir, record


def test_int8_set_is_added_and_runs(quantized):
    model_dir, record = quantized
    spec = yaml.safe_load((model_dir / "model.yaml").read_text())
    int8 = spec["resolutions"]["64x64"]["int8"]
    assert set(int8) == set(GRAPHS)
    assert set(record["graphs"]) == {f"64x64/{g}.onnx" for g in int8}
    for rel, entry in record["graphs"].items():
        role = rel.split("/")[-1][:-5]
        quantized = any(n.op_type == "QuantizeLinear" for n in onnx.load(str(model_dir / int8[role])).graph.node)
        assert quantized == (entry["chosen"] != "fp32"), rel
        assert entry["int8"]["latency_ms"] > 0 and -1 <= entry["int8"]["cosine"] <= 1
    engine = Engine(model_dir, precision="int8")
    frame = generate_video(3, 0, 1, 64, 64).frames[0]
    prepared = engine.prepare(frame)
    decoded = engine.decode(engine.keyframe_features(prepared))
    assert decoded["kernels"].shape == (100, 128) and np.isfinite(decoded["kernels"]).all()


def test_int8_is_not_kept_when_it_is_not_accurate_enough(quantized, tmp_path):
    model_dir, _ = quantized
    pairs = [(generate_video(3, 1, 1, 64, 64).frames[0], None)]
    feeds = collect_inputs(Engine(model_dir), pairs, (64, 64))["mask_decoder"]
    winner, candidates = quantize_graph(model_dir / "64x64" / "mask_decoder.onnx", tmp_path, feeds, feeds,
                                        "minmax", min_cosine=1.01, repeats=1, search_below=0.0)
    assert winner.name == "fp32" and [c.name for c in candidates] == ["fp32", "int8", "int8_w8"]


def test_a_graph_under_the_search_cosine_tries_its_most_sensitive_node_in_fp32(quantized, tmp_path):
    model_dir, _ = quantized
    pairs = [(generate_video(3, v, 1, 64, 64).frames[0], None) for v in range(4)]
    feeds = collect_inputs(Engine(model_dir), pairs, (64, 64))["mask_decoder"]
    _, candidates = quantize_graph(model_dir / "64x64" / "mask_decoder.onnx", tmp_path, feeds, feeds, "minmax",
                                   min_cosine=0.0, repeats=1, search_below=1.01)
    by_name = {c.name: c for c in candidates}
    base = max(candidates[1:3], key=lambda c: c.cosine)
    searched = by_name[f"{base.name}_fp32_node"]
    assert len(searched.exclude) == 1 and searched.reduce_range == base.reduce_range
    graph = onnx.load(str(searched.path)).graph
    conv = next(n for n in graph.node if n.name == searched.exclude[0])
    producers = {o: n.op_type for n in graph.node for o in n.output}
    # its weights stay FP32 (not its bias: the exporter shares equal bias constants between convolutions)
    assert producers.get(conv.input[1]) != "DequantizeLinear"
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)              # the rest is INT8


def test_the_int8_shallow_graph_reads_the_pixels_as_its_first_quantized_tensor(fp32_dir, calib_dir, tmp_path):
    pairs = calibration_images(calib_dir, 4)
    engine = Engine(fp32_dir)
    feeds = collect_inputs(engine, pairs, (64, 64))["shallow"]
    int8 = tmp_path / "shallow.onnx"
    quantize_file(fp32_dir / "64x64" / "shallow.onnx", int8, feeds, "minmax", [])
    model = onnx.load(str(int8))
    ops = [n.op_type for n in model.graph.node]
    assert "Cast" not in ops and "Sub" not in ops and "Div" not in ops   # no float image any more
    transpose = next(n for n in model.graph.node if n.input[0] == "image")
    first = next(n for n in model.graph.node if transpose.output[0] in n.input)
    assert first.op_type == "DequantizeLinear"
    # that DequantizeLinear gives exactly the training normalisation of every pixel value
    model.graph.output.append(onnx.helper.make_tensor_value_info(first.output[0], onnx.TensorProto.FLOAT, None))
    pixels = np.arange(64 * 64 * 3).reshape(1, 64, 64, 3) % 256
    session = ort_session(model)
    normalised = session.run([first.output[0]], {"image": pixels.astype(np.uint8)})[0]
    np.testing.assert_array_equal(normalised, (pixels.transpose(0, 3, 1, 2) - 127.0) / 128.0)
    fp32 = engine.shallow(engine.prepare(pairs[0][0]))
    got = session.run(["x3"], {"image": engine.prepare(pairs[0][0]).tensor})[0]
    assert float((fp32 * got).sum() / np.linalg.norm(fp32) / np.linalg.norm(got)) > 0.9


def test_int8_candidates_with_a_quantized_stem_take_rgba_and_the_engine_feeds_them(fp32_dir, calib_dir, tmp_path):
    model_dir = fresh_copy(fp32_dir, tmp_path)
    engine = Engine(model_dir)
    feeds = collect_inputs(engine, calibration_images(calib_dir, 4), (64, 64))["shallow"]
    _, candidates = quantize_graph(model_dir / "64x64" / "shallow.onnx", model_dir / "int8", feeds, feeds, "minmax",
                                   min_cosine=0.0, repeats=1, search_below=0.0)
    channels = {c.name: ort_session(onnx.load(str(c.path))).get_inputs()[0].shape[-1] for c in candidates}
    assert channels == {"fp32": 3, "int8": 4, "int8_w8": 4, "int8_fp32_stem": 3, "int8_fp32_stem_w8": 3}
    wide = next(c for c in candidates if c.name == "int8_w8")
    assert wide.cosine > 0.95        # measured on RGB frames given a fourth channel
    graph = onnx.load(str(wide.path)).graph
    stem = next(n for n in graph.node if n.op_type == "Conv")
    producer = {o: n for n in graph.node for o in n.output}[stem.input[1]]
    weights = onnx.numpy_helper.to_array(next(i for i in graph.initializer if i.name == producer.input[0]))
    assert weights.shape[1] == 4 and not weights[:, 3].any()   # the fourth channel's weights are zero

    spec = yaml.safe_load((model_dir / "model.yaml").read_text())
    spec["resolutions"]["64x64"]["int8"] = {**spec["resolutions"]["64x64"]["fp32"],
                                            "shallow": str(wide.path.relative_to(model_dir))}
    (model_dir / "model.yaml").write_text(yaml.safe_dump(spec))
    rgb = generate_video(3, 0, 1, 64, 64).frames[0]
    int8 = Engine(model_dir, precision="int8")
    prepared, plain = int8.prepare(rgb), engine.prepare(rgb)
    assert prepared.tensor.shape == (1, 64, 64, 4) and plain.tensor.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(prepared.tensor[0, :, :, :3], plain.tensor[0])
    a, b = int8.shallow(prepared), engine.shallow(plain)
    assert float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b)) > 0.95


def ort_session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_only_the_rgb_stem_counts_as_a_thin_dense_conv(fp32_dir):
    assert len(_stem_convs(fp32_dir / "64x64" / "shallow.onnx")) == 1
    assert _stem_convs(fp32_dir / "64x64" / "deep.onnx") == []


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "calibration directory not found"),
    (lambda p: p, "no .jpg/.jpeg/.png/.bmp images found"),
])
def test_cli_errors_are_one_line(fp32_dir, tmp_path, capsys, make, message):
    assert main(["--model", str(fp32_dir), "--calibration", str(make(tmp_path))]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_histogram_calibration_of_graphs_shared_by_two_resolutions(calib_dir, tmp_path):
    """Percentile and entropy calibration stack each tensor over the batches: a graph file that serves
    two resolutions calibrates on one of them instead of failing on the mixed shapes."""
    torch.manual_seed(0)
    model = build_model({"backbone": {"pretrained": False}}, 3).eval()
    model_dir = tmp_path / "shared"
    export_model(model, ["a", "b", "c"], model_dir, [(64, 64), (96, 64)], layout="shared")
    record = quantize_model(model_dir, calibration_images(calib_dir, 4), method="entropy", min_cosine=0.0,
                            repeats=1, log=lambda _: None)
    assert record["method"] == "entropy" and len(record["graphs"]) == len(GRAPHS)
    spec = yaml.safe_load((model_dir / "model.yaml").read_text())
    assert set(spec["resolutions"]["96x64"]["int8"]) == set(GRAPHS)
    engine = Engine(model_dir, precision="int8", resolution=(96, 64))
    prepared = engine.prepare(generate_video(3, 0, 1, 96, 64).frames[0])
    assert np.isfinite(engine.decode(engine.keyframe_features(prepared))["kernels"]).all()
