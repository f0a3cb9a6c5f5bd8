"""Inference-cost options of the model config (docs/performance.md): same split-API contract, fewer
parameters or operators, bad values refused, and the default model's weights still load."""
import pytest
import torch

from mobileinst_ros.model import build_model

torch.set_num_threads(1)

LEAN = {"kernel_dim": 64, "backbone": {"pretrained": False, "stem": "dense", "skip_blocks": [2, 7, 10, 13, 14]},
        "mask_decoder": {"dim": 64, "fuse": "sum", "enhance_stride8": False, "upsample": "nearest"}}


def test_lean_options_keep_the_split_api_shapes():
    torch.manual_seed(0)
    model = build_model(LEAN, num_classes=3).eval()
    images = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        x3 = model.backbone.forward_shallow(images)
        x4, x5, x6 = model.backbone.forward_deep(x3)
        mf = model.mask_decoder(x3, x4, x5, x6)
        out = model.instance_decoder(x6, mf)
    assert x3.shape == (1, 40, 12, 16) and x4.shape == (1, 112, 6, 8) and x5.shape == (1, 320, 3, 4)
    assert mf.shape == (1, 64, 12, 16) and out["kernels"].shape == (1, 100, 64)
    assert model.mask_decoder.enhance3 is None


def test_dropped_blocks_are_gone_and_the_others_kept():
    full = build_model({"backbone": {"pretrained": False}}, num_classes=3).backbone
    lean = build_model({"backbone": {"pretrained": False, "skip_blocks": [7, 13]}}, num_classes=3).backbone
    assert len(lean.stage4) == len(full.stage4) - 1 and len(lean.stage5) == len(full.stage5) - 1
    assert len(lean.stage3) == len(full.stage3)


def test_default_options_keep_the_trained_state_dict_layout():
    default = build_model({"backbone": {"pretrained": False}}, num_classes=3)
    explicit = build_model({"backbone": {"pretrained": False, "stem": "efficientnet", "skip_blocks": []},
                            "mask_decoder": {"fuse": "concat", "enhance_stride8": True, "upsample": "bilinear"}},
                           num_classes=3)
    explicit.load_state_dict(default.state_dict())  # strict: same parameter names and shapes


@pytest.mark.parametrize("cfg, message", [
    ({"backbone": {"pretrained": False, "skip_blocks": [5]}}, "only residual"),
    ({"backbone": {"pretrained": False, "stem": "tiny"}}, "stem"),
    ({"backbone": {"pretrained": False}, "mask_decoder": {"fuse": "max"}}, "fuse"),
])
def test_bad_option_values_are_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_model(cfg, num_classes=3)
