"""Teacher specs: a teacher runs as its spec says, and a spec or file that does not fit is named clearly."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from autolabel_scene import red_detector_spec, red_disc_frames
from mobileinst_ros.autolabel.teacher import TeacherError, load_spec, load_teacher, ssd_anchors


def test_the_red_detector_finds_the_disc(tmp_path: Path) -> None:
    teacher = load_teacher(red_detector_spec(tmp_path))
    frames, masks = red_disc_frames(3)
    for frame, mask in zip(frames, masks):
        det = teacher.detect(frame)
        ys, xs = np.nonzero(mask)
        assert len(det) == 1 and teacher.training_classes[det.labels[0]] == "disc"
        np.testing.assert_allclose(det.boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=2.5)
    assert len(teacher.detect(np.full_like(frames[0], 100))) == 0


@pytest.mark.parametrize("change, message", [
    ({"input": None}, "'input' must be dict"),
    ({"class_map": {"dragon": "disc"}}, "class_map names classes the teacher does not have: ['dragon']"),
    ({"class_map": {}}, "class_map is empty"),
    ({"decoding": {"type": "yolo9000", "boxes": "boxes", "scores": "scores"}}, "'type' is 'yolo9000'"),
    ({"tiles": [[0, 1]]}, "tiles must be a list"),
])
def test_spec_errors_name_the_spec_and_the_key(tmp_path: Path, change: dict, message: str) -> None:
    path = red_detector_spec(tmp_path, **change)
    with pytest.raises(TeacherError, match="red.yaml") as error:
        load_spec(path)
    assert message in str(error.value)


def test_missing_spec_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="nowhere.yaml: teacher spec not found"):
        load_spec(tmp_path / "nowhere.yaml")
    path = red_detector_spec(tmp_path, file="gone.onnx")
    with pytest.raises(TeacherError, match="gone.onnx not found; run scripts/fetch_teachers.sh"):
        load_teacher(path)


def test_a_file_that_does_not_match_its_spec(tmp_path: Path) -> None:
    cases = [
        ({"sha256": "0" * 64}, "does not match the spec's"),
        ({"input": {"name": "pixels", "width": 64, "height": 64}}, "no input 'pixels'"),
        ({"input": {"name": "images", "width": 32, "height": 64}}, "has shape [1, 3, 64, 64], the spec says NCHW"),
        ({"class_names": ["a", "b", "red thing"], "class_map": {"red thing": "disc"}}, "has 2 class columns"),
        ({"decoding": {"type": "boxes_scores", "boxes": "bbox", "scores": "scores"}}, "no output 'bbox'"),
    ]
    for change, message in cases:
        path = red_detector_spec(tmp_path, **change)
        with pytest.raises(TeacherError, match="red.yaml: teacher file") as error:
            load_teacher(path)
        assert message in str(error.value)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(TeacherError, match="not a loadable ONNX model"):
        load_teacher(red_detector_spec(tmp_path, file="junk.onnx"))


def test_ssd_anchors_are_the_tf_generators() -> None:
    """The Open Images SSD's 1917 anchors: 19x19x3 in the lowest layer, then 6 per cell."""
    spec = yaml.safe_load((Path(__file__).parents[1] / "config/teachers/oid_ssd_mobilenetv2.yaml").read_text())
    anchors = ssd_anchors(**spec["decoding"]["anchors"])
    assert anchors.shape == (1917, 4)
    np.testing.assert_allclose(anchors[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(anchors[1], [0.5 / 19, 0.5 / 19, 0.2 / np.sqrt(2), 0.2 * np.sqrt(2)], rtol=1e-6)
    # The last anchor: the 1x1 layer's interpolated scale sqrt(0.95 * 1.0), square, centred.
    np.testing.assert_allclose(anchors[-1], [0.5, 0.5, np.sqrt(0.95), np.sqrt(0.95)], rtol=1e-6)


def test_the_shipped_spec_is_valid() -> None:
    spec = load_spec(Path(__file__).parents[1] / "config/teachers/oid_ssd_mobilenetv2.yaml")
    assert len(spec.class_names) == 24 and spec.decoding["background_class"] == 0
    assert "person" in spec.training_classes and spec.licence.startswith("Apache-2.0")


def test_a_yolo_style_single_transposed_output(tmp_path: Path) -> None:
    """An exported YOLO gives one [1, 4 + C, N] output: cx, cy, w, h in input pixels, then class scores."""
    import onnx
    from onnx import TensorProto, helper

    # Two candidates for 2 classes; the first is a confident class-1 box centred at (32, 16), 20x10.
    raw = np.array([[32, 50], [16, 50], [20, 8], [10, 8], [0.1, 0.2], [0.9, 0.1]], np.float32)[None]
    nodes = [
        helper.make_node("Constant", [], ["raw"], value=helper.make_tensor("raw", TensorProto.FLOAT, raw.shape,
                                                                           raw.flatten().tolist())),
        helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["raw", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "yolo_like",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9),
              str(tmp_path / "yolo.onnx"))
    spec = red_detector_spec(
        tmp_path, file="yolo.onnx", class_names=["person", "car"], class_map={"person": "person", "car": "car"},
        decoding={"type": "boxes_scores", "boxes": "output0", "scores": "output0", "transpose": True,
                  "box_format": "cxcywh"})
    teacher = load_teacher(spec)
    det = teacher.detect(np.zeros((128, 128, 3), np.uint8), min_score=0.3)  # frame twice the input size
    assert len(det) == 1 and teacher.training_classes[det.labels[0]] == "car"
    np.testing.assert_allclose(det.boxes[0], [44, 22, 84, 42])
    np.testing.assert_allclose(det.scores, [0.9])


def test_ssd_decoding_box_coder_and_background(tmp_path: Path) -> None:
    """A one-cell SSD (3 anchors): encodings (ty, tx, th, tw) scaled by the box coder move the anchor's
    centre by ty / 10 of its height and scale its size by exp(th / 5); the background column is dropped."""
    import onnx
    from onnx import TensorProto, helper

    encodings = np.array([[[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 5 * np.log(2), 0]]], np.float32)
    logits = np.array([[[5, -5], [-5, 5], [-5, -5]]], np.float32)  # background, "thing"
    nodes = [helper.make_node("ReduceSum", ["image"], ["total"], keepdims=0),
             helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])),
             helper.make_node("Mul", ["total", "zero"], ["nothing"])]
    for name, value in (("enc", encodings), ("logit", logits)):
        nodes += [helper.make_node("Constant", [], [f"{name}_c"], value=helper.make_tensor(
                      f"{name}_c", TensorProto.FLOAT, value.shape, value.flatten().tolist())),
                  helper.make_node("Add", [f"{name}_c", "nothing"], [name])]
    graph = helper.make_graph(nodes, "ssd_like",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 100, 100, 3])],
                              [helper.make_tensor_value_info("enc", TensorProto.FLOAT, [1, 3, 4]),
                               helper.make_tensor_value_info("logit", TensorProto.FLOAT, [1, 3, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9),
              str(tmp_path / "ssd.onnx"))
    spec = red_detector_spec(
        tmp_path, file="ssd.onnx", class_names=["background", "thing"], class_map={"thing": "thing"},
        input={"name": "image", "width": 100, "height": 100, "layout": "NHWC"},
        decoding={"type": "ssd", "boxes": "enc", "scores": "logit", "score_activation": "sigmoid",
                  "background_class": 0,
                  "anchors": {"min_scale": 0.2, "max_scale": 0.95, "feature_maps": [1], "aspect_ratios": [1.0]},
                  "box_coder": {"y_scale": 10, "x_scale": 10, "h_scale": 5, "w_scale": 5}})
    det = load_teacher(spec).detect(np.zeros((200, 400, 3), np.uint8), min_score=0.5)
    # Only anchor 1 is a "thing": (cy, cx, h, w) = (0.5, 0.5, 0.2 / sqrt 2, 0.2 * sqrt 2), moved down by h / 10.
    h, w = 0.2 / np.sqrt(2), 0.2 * np.sqrt(2)
    cy = 0.5 + h / 10
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0], [(0.5 - w / 2) * 400, (cy - h / 2) * 200, (0.5 + w / 2) * 400,
                                              (cy + h / 2) * 200], rtol=1e-5)
