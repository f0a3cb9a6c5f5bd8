"""Bad model directories and bad images give clear errors naming the file / what was expected."""
import shutil

import numpy as np
import pytest
import yaml

from mobileinst_ros.runtime.engine import Engine, ModelLoadError, NonFiniteOutputError
from mobileinst_ros.runtime.preprocess import ImageError
from oracle_model import export_oracle, frame

SIZE = (64, 64)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return export_oracle(tmp_path_factory.mktemp("oracle") / "model", [SIZE])


@pytest.fixture
def copy(model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


@pytest.fixture(scope="module")
def engine(model_dir):
    return Engine(model_dir)


# --- model files ------------------------------------------------------------------------------------

def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match=r"nowhere.*does not exist"):
        Engine(tmp_path / "nowhere")


def test_missing_model_yaml(copy):
    (copy / "model.yaml").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.yaml: missing"):
        Engine(copy)


def test_corrupt_model_yaml(copy):
    (copy / "model.yaml").write_text("classes: [unclosed\n")
    with pytest.raises(ModelLoadError, match=r"model\.yaml: not valid YAML"):
        Engine(copy)


def test_model_yaml_missing_a_key(copy):
    spec = yaml.safe_load((copy / "model.yaml").read_text())
    del spec["classes"]
    (copy / "model.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ModelLoadError, match=r"model\.yaml: missing key 'classes'"):
        Engine(copy)


def set_in_model_yaml(model_dir, key, value):
    spec = yaml.safe_load((model_dir / "model.yaml").read_text())
    spec[key] = value
    (model_dir / "model.yaml").write_text(yaml.safe_dump(spec))


def test_a_model_of_the_old_format_asks_for_a_new_export(copy):
    set_in_model_yaml(copy, "format", "mobileinst-onnx-1")
    with pytest.raises(ModelLoadError, match=r"mobileinst-onnx-1 .* export the checkpoint again"):
        Engine(copy)


def test_model_yaml_with_a_bad_location_terms(copy):
    set_in_model_yaml(copy, "location_terms", "five")
    with pytest.raises(ModelLoadError, match=r"model\.yaml: 'location_terms' must be int"):
        Engine(copy)


def test_missing_graph_file(copy):
    graph = next(copy.rglob("deep.onnx"))
    graph.unlink()
    with pytest.raises(ModelLoadError, match=r"deep\.onnx: graph file missing"):
        Engine(copy)


def test_corrupt_graph_file(copy):
    graph = next(copy.rglob("instance_decoder.onnx"))
    graph.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelLoadError, match=r"instance_decoder\.onnx: cannot load as ONNX"):
        Engine(copy)


def test_truncated_graph_file(copy):
    graph = next(copy.rglob("shallow.onnx"))
    graph.write_bytes(graph.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match=r"shallow\.onnx: cannot load as ONNX"):
        Engine(copy)


def test_graph_with_the_wrong_tensors(copy):
    # the mask decoder's file in the place of the shallow backbone: wrong inputs and outputs
    shallow = next(copy.rglob("shallow.onnx"))
    shutil.copy(shallow.parent / "mask_decoder.onnx", shallow)
    with pytest.raises(ModelLoadError, match=r"shallow\.onnx: shallow graph must map \['image'\] -> \['x3'\]"):
        Engine(copy)


def test_graph_of_the_wrong_shape(copy, tmp_path):
    # a model exported with another kernel dimension: the tensors are named right but do not fit
    set_in_model_yaml(copy, "kernel_dim", 16)
    with pytest.raises(ModelLoadError, match=r"tensor 'mask_features' has shape \[1, 4, .*expected \[1, 16"):
        Engine(copy)


def test_unknown_resolution_and_missing_int8(model_dir):
    with pytest.raises(ModelLoadError, match=r"no graphs at 320x320; exported resolutions: \['64x64'\]"):
        Engine(model_dir, resolution="320x320")
    with pytest.raises(ModelLoadError, match=r"no int8 graphs at 64x64.*mobileinst-quantize"):
        Engine(model_dir, precision="int8")


# --- images -----------------------------------------------------------------------------------------

def test_grayscale_images_are_used_as_rgb(engine):
    gray = np.full((48, 80), 127, np.uint8)
    assert engine.prepare(gray).rgb.shape == (48, 80, 3)
    assert engine.prepare(gray[:, :, None]).rgb.shape == (48, 80, 3)


@pytest.mark.parametrize("shape", [(37, 23, 3), (1, 1, 3), (500, 3, 3), (3, 700, 3)])
def test_odd_sizes_give_masks_at_the_image_size(engine, shape):
    image = np.full(shape, 127, np.uint8)
    image[: shape[0] // 2 + 1, : shape[1] // 2 + 1] = (255, 0, 0)
    instances = engine.infer(image)
    assert all(inst.mask.shape == shape[:2] for inst in instances)


def test_red_half_of_an_odd_image_is_found(engine):
    image = frame((71, 45), {0: (0, 0, 40, 45)})
    (red,) = engine.infer(image)
    assert red.class_id == 0 and red.mask.shape == (45, 71)
    assert abs(int(red.mask[:, :40].sum()) - 40 * 45) < 0.1 * 40 * 45 and red.mask[:, 48:].sum() == 0


@pytest.mark.parametrize("image, message", [
    (np.zeros((10, 10, 4), np.uint8), r"got shape \(10, 10, 4\).*4-channel"),
    (np.zeros((10, 10, 3), np.uint16), r"dtype uint16.*16-bit"),
    (np.zeros((10, 10, 3), np.float32), r"dtype float32.*float"),
    (np.zeros((0, 10, 3), np.uint8), r"empty"),
    (np.zeros((10, 10, 2), np.uint8), r"got shape \(10, 10, 2\)"),
    (np.zeros((2, 10, 10, 3), np.uint8), r"got shape \(2, 10, 10, 3\)"),
    ([[1, 2], [3, 4]], r"numpy array"),
])
def test_unusable_images_are_rejected_with_what_was_expected(engine, image, message):
    with pytest.raises(ImageError, match=message):
        engine.prepare(image)


def test_nan_output_raises_non_finite(engine):
    with pytest.raises(NonFiniteOutputError, match="mask_features"):
        engine.infer(frame(SIZE, {}, white=True))
