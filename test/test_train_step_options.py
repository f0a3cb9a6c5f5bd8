"""Training-speed options keep the losses: point-sampled mask losses, bf16 autocast, a frozen backbone prefix (in
bf16 too)."""
import pytest
import torch

from mobileinst_ros.data.clips import ClipPairDataset, collate_pairs
from mobileinst_ros.data.transforms import ClipAugment
from mobileinst_ros.data.ytvis import load_ytvis
from mobileinst_ros.model import build_model, normalize_images
from mobileinst_ros.model.criterion import SetCriterion, point_sample
from mobileinst_ros.model.matcher import HungarianMatcher
from mobileinst_ros.training.step import TrainStep
from mobileinst_ros.training.train import FrozenPrecision, freeze_backbone_prefix
from tiny_ytvis import write_tiny_ytvis

torch.set_num_threads(1)


def blob_masks(k=4, size=64):
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return torch.stack([((yy - 12 - 9 * i) ** 2 + (xx - 30) ** 2 < (8 + 2 * i) ** 2).float() for i in range(k)])


def test_point_sampled_mask_losses_estimate_the_dense_ones():
    torch.manual_seed(0)
    targets = blob_masks()
    # predictions at stride 8: the targets' coverage, blurred into logits, plus noise
    coverage = torch.nn.functional.avg_pool2d(targets[:, None], 8)[:, 0]
    logits = ((coverage * 2 - 1) * 4 + torch.randn_like(coverage)).requires_grad_()
    dense = SetCriterion(HungarianMatcher(), mask_loss_stride=1).mask_losses(logits, targets)
    uniform = torch.rand(len(targets), 4096, 2)  # uniform points: an unbiased estimate of the dense BCE
    pred, tgt = point_sample(logits, uniform), point_sample(targets, uniform)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred, tgt, reduction="none").mean(1).sum()
    assert float(bce) == pytest.approx(float(dense["mask"]), rel=0.1)
    assert torch.allclose(tgt.mean(1), targets.mean((1, 2)), atol=0.02)

    points = SetCriterion(HungarianMatcher(), mask_points=1024).mask_losses(logits, targets)
    # importance sampling puts 3/4 of the points where the prediction is uncertain: a higher BCE
    assert dense["mask"] < points["mask"] < 6 * dense["mask"]
    assert 0.5 * dense["dice"] < points["dice"] < 2 * dense["dice"]
    points["dice"].backward()
    assert logits.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    ds = load_ytvis(write_tiny_ytvis(tmp_path_factory.mktemp("tiny"), videos=2, frames=3))
    pairs = ClipPairDataset(ds, ClipAugment((64, 64), scale_range=(1.0, 1.0), flip_prob=0.0), max_gap=1)
    b = collate_pairs([pairs[i] for i in range(2)])
    return normalize_images(b["images"]), b["targets"], len(ds.classes)


def test_bf16_autocast_losses_agree_with_fp32(batch):
    images, targets, classes = batch
    torch.manual_seed(0)
    model = build_model({"backbone": {"pretrained": False}, "instance_decoder": {"num_queries": 8}}, classes)
    fp32 = TrainStep(model, SetCriterion(HungarianMatcher()))
    bf16 = TrainStep(model, SetCriterion(HungarianMatcher()), autocast_dtype=torch.bfloat16)
    with torch.no_grad():
        a, b = fp32(images, targets, reuse=True), bf16(images, targets, reuse=True)
    # bf16 keeps 8 bits of mantissa: outputs within ~1%, losses (through the matching) within 10%
    for key in ("main", "aux", "temporal", "reuse", "total"):
        assert a[key].dtype == b[key].dtype == torch.float32
        assert float(b[key]) == pytest.approx(float(a[key]), rel=0.1), key


def test_frozen_prefix_gets_no_gradient_and_keeps_its_statistics(batch):
    images, targets, classes = batch
    torch.manual_seed(0)
    model_cfg = {"instance_decoder": {"num_queries": 8}}  # the pretrained backbone (frozen weights must be)
    model = build_model(model_cfg, classes)
    prefix = freeze_backbone_prefix(model, 3, {"backbone": {"name": "efficientnet_lite0", "pretrained": True}})
    stats = prefix[0][1].running_mean.clone()
    model.train()
    prefix.eval()
    step = TrainStep(model, SetCriterion(HungarianMatcher()))
    step(images, targets, reuse=False)["total"].backward()
    assert all(p.grad is None for p in prefix.parameters())
    assert torch.equal(prefix[0][1].running_mean, stats)
    assert all(p.grad is not None for p in model.backbone.stage3[3].parameters())
    with pytest.raises(ValueError, match="pretrained"):
        freeze_backbone_prefix(model, 3, {"backbone": {"pretrained": False}})


def test_frozen_prefix_in_bf16_only_inside_training_steps(batch):
    images, targets, classes = batch
    torch.manual_seed(0)
    model = build_model({"instance_decoder": {"num_queries": 8}}, classes)
    keys = set(model.state_dict())
    prefix = freeze_backbone_prefix(model, 2, {"backbone": {"name": "efficientnet_lite0", "pretrained": True}})
    model.eval()
    frames = images.flatten(0, 1)
    with torch.no_grad():
        fp32 = model(frames)
        precision = FrozenPrecision(prefix, torch.bfloat16)
        assert torch.equal(model(frames)["masks"], fp32["masks"])  # outside a step: float32, exact
        with precision:
            bf16 = model(frames)
        model.train()
        prefix.eval()
        with precision:
            losses = TrainStep(model, SetCriterion(HungarianMatcher()))(images, targets, reuse=True)
    assert model(frames)["masks"].dtype == torch.float32 and set(model.state_dict()) == keys
    # bf16 rounding in the first layers only: a few % of x3, far less than INT8 moves it; the rest stays float32
    for name, a, b in [("x3", fp32["features"][0], bf16["features"][0]), ("masks", fp32["masks"], bf16["masks"]),
                       ("logits", fp32["logits"], bf16["logits"])]:
        assert b.dtype == torch.float32 and not torch.equal(a, b)
        assert float((b - a).norm() / a.norm()) < 0.08, name
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def test_objectness_negatives_push_unmatched_queries_down():
    torch.manual_seed(0)
    targets = [{"labels": torch.tensor([0]), "masks": blob_masks(1)}]
    outputs = {"logits": torch.zeros(1, 4, 2), "objectness": torch.zeros(1, 4, requires_grad=True),
               "masks": torch.randn(1, 4, 8, 8)}
    for negatives in (False, True):
        outputs["objectness"].grad = None
        losses, indices = SetCriterion(HungarianMatcher(), objectness_negatives=negatives)(outputs, targets)
        losses["objectness"].backward()
        grad = outputs["objectness"].grad[0]
        unmatched = [q for q in range(4) if q not in indices[0][0].tolist()]
        if negatives:
            assert (grad[unmatched] > 0).all()  # gradient descent lowers their objectness
        else:
            assert (grad[unmatched] == 0).all()
