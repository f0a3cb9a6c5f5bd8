"""``instance_decoder.local: activation``: the local stage reads the stride-8 mask features through
SparseInst-style instance activation maps, so one query can take in one small object's features where
pooled tokens mix neighbours; the model still trains and exports one graph for every resolution."""
import numpy as np
import pytest
import torch

from mobileinst_ros.export.export import export_model
from mobileinst_ros.model import build_model
from mobileinst_ros.model.instance_decoder import InstanceActivationStage, InstanceDecoder
from mobileinst_ros.runtime.engine import Engine

TINY = {"backbone": {"pretrained": False}, "mask_decoder": {"dim": 32, "coords": True},
        "instance_decoder": {"num_queries": 8, "local": "activation"}}


def test_each_map_sums_to_one_over_the_cells():
    stage = InstanceActivationStage(num_queries=5, kernel_dim=16, dim=32, heads=4, ffn_dim=64)
    maps = stage.activation_maps(torch.randn(2, 16, 6, 10))
    assert maps.shape == (2, 5, 60)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 5), atol=1e-5)


def test_a_map_that_prefers_a_place_takes_in_that_place_s_features():
    stage = InstanceActivationStage(num_queries=2, kernel_dim=4, dim=8, heads=2, ffn_dim=16)
    with torch.no_grad():
        stage.activation.weight.zero_()
        stage.activation.bias.zero_()
        stage.activation.weight[0, 4] = -40.0  # query 0: cells with x < 0 (the x coordinate is channel K)
        stage.activation.weight[1, 4] = 40.0   # query 1: cells with x > 0
    left, right = torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 0, 1.0, 0])
    features = torch.zeros(1, 4, 4, 8)  # two objects side by side, each 4 cells (32 px) wide
    features[0, :, :, :4] = left[:, None, None]
    features[0, :, :, 4:] = right[:, None, None]
    maps = stage.activation_maps(features)
    pooled = torch.matmul(maps, features.flatten(2).transpose(1, 2))[0]
    assert torch.allclose(pooled[0], left, atol=0.01) and torch.allclose(pooled[1], right, atol=0.01)


def test_unknown_local_stage_is_refused():
    with pytest.raises(ValueError, match="attention|activation"):
        InstanceDecoder(64, 3, local="pooling")


def test_training_step_reaches_the_activation_maps():
    torch.manual_seed(0)
    model = build_model(TINY, 3).train()
    out = model(torch.randn(2, 3, 64, 96))
    assert out["masks"].shape == (2, 8, 8, 12)
    (out["masks"].mean() + out["logits"].mean()).backward()
    assert model.instance_decoder.local_stage.activation.weight.grad.abs().sum() > 0


def test_exports_one_graph_for_every_resolution(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY, 2).eval()
    report = export_model(model, ["a", "b"], tmp_path / "model", [(128, 96), (96, 128)])
    assert max(p.max_abs for p in report) < 1e-3
    engine = Engine(tmp_path / "model", threads=1)
    engine.infer(np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8))
