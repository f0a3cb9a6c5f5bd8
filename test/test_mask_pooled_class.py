"""``instance_decoder.mask_pooled_class``: a class read from the backbone's X4 averaged under each query's own
mask, added to the query's class logits; the instance decoder graph then takes x4 too, and the engine, the
torch engine of validation and INT8 calibration feed it."""
import numpy as np
import torch

from mobileinst_ros.export.export import export_model
from mobileinst_ros.export.quantize import collect_inputs
from mobileinst_ros.model import build_model
from mobileinst_ros.model.criterion import SetCriterion
from mobileinst_ros.model.instance_decoder import MaskPooledClassifier
from mobileinst_ros.model.matcher import HungarianMatcher
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.training.step import TrainStep
from mobileinst_ros.training.torch_engine import TorchEngine

TINY = {"backbone": {"pretrained": False}, "kernel_dim": 16, "mask_decoder": {"dim": 16, "coords": True},
        "instance_decoder": {"num_queries": 6, "local": "activation", "mask_pooled_class": True}}


def _left_half_mask() -> tuple[torch.Tensor, torch.Tensor]:
    """One kernel whose mask (stride 8, 8x16 cells) is the left half of the image, the right half far below 0."""
    features = torch.zeros(1, 1, 8, 16)
    features[..., :8] = 1.0
    features[..., 8:] = -1.0
    return torch.tensor([[[20.0]]]), features


def _classifier(x4_channels: int = 3) -> MaskPooledClassifier:
    head = MaskPooledClassifier(x4_channels, num_classes=2)
    with torch.no_grad():
        head.cls.weight.copy_(torch.randn(2, x4_channels))
    return head


def test_the_class_reads_x4_under_the_query_mask_only():
    torch.manual_seed(0)
    head, (kernels, features) = _classifier(), _left_half_mask()
    x4 = torch.randn(1, 3, 4, 8)  # stride 16: columns 0-3 under the mask
    base = head(kernels, features, x4)
    right = x4.clone()
    right[..., 4:] += 5.0
    left = x4.clone()
    left[..., :4] = torch.randn(1, 3, 4, 4)
    assert torch.allclose(head(kernels, features, right), base, atol=1e-4)
    assert not torch.allclose(head(kernels, features, left), base, atol=1e-2)


def test_the_class_loss_trains_x4_not_the_masks():
    head, (kernels, features) = _classifier(), _left_half_mask()
    kernels, features = kernels.requires_grad_(), features.requires_grad_()
    x4 = torch.randn(1, 3, 4, 8, requires_grad=True)
    head(kernels, features, x4).square().sum().backward()
    assert kernels.grad is None and features.grad is None
    assert x4.grad is not None and x4.grad[..., :4].abs().sum() > 0


def test_a_new_head_leaves_the_predictions_as_without_it():
    torch.manual_seed(0)
    model = build_model(TINY, 2).eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        with_head = model(images)["logits"]
        model.instance_decoder.mask_class = None
        without = model(images)["logits"]
    assert torch.equal(with_head, without)


def test_passed_queries_are_named_from_the_later_frame_x4():
    """Temporal query passing: frame t's queries take frame t+d's class under the mask, as at inference."""
    torch.manual_seed(0)
    model = build_model(TINY, 2).eval()
    with torch.no_grad():
        model.instance_decoder.mask_class.cls.weight.normal_()
    step = TrainStep(model, SetCriterion(HungarianMatcher())).eval()
    images = torch.randn(2, 3, 64, 64)
    images[1] = images[1] * 0.5 + 0.3
    with torch.no_grad():
        out = model(images)
        passed = step.passed_predictions(out, 1)
        decoder, queries = model.instance_decoder, out["global_queries"][0:1]
        local = decoder.forward_local(queries, out["mask_features"][1:2])
        later = decoder.predict(local, out["mask_features"][1:2], out["features"][1][1:2])
        earlier = decoder.predict(local, out["mask_features"][1:2], out["features"][1][0:1])
    assert torch.allclose(passed["logits"], later["logits"], atol=1e-6)
    assert not torch.allclose(passed["logits"], earlier["logits"], atol=1e-3)


def test_model_exports_with_x4_and_every_engine_feeds_it(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY, 2).eval()
    with torch.no_grad():
        model.instance_decoder.mask_class.cls.weight.normal_()  # a trained head: the class depends on x4
    report = export_model(model, ["a", "b"], tmp_path / "model", [(96, 64)])
    assert max(p.max_abs for p in report) < 1e-2
    engine = Engine(tmp_path / "model", threads=1, score_threshold=0.0)
    assert engine.graph_inputs((96, 64), "instance_decoder") == ("x6", "mask_features", "x4")
    frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
    features = engine.keyframe_features(engine.prepare(frame))
    onnx_logits = engine.decode(features)["logits"]
    torch_engine = TorchEngine(model, ["a", "b"], [(96, 64)])
    torch_logits = torch_engine.decode(torch_engine.keyframe_features(torch_engine.prepare(frame)))["logits"]
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-3)
    feeds = collect_inputs(engine, [(frame, None)], (96, 64))
    assert set(feeds["instance_decoder"][0]) == {"x6", "mask_features", "x4"}
