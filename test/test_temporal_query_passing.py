"""Temporal query passing and feature reuse take their own paths through the network.

The model runs in eval mode here so that BatchNorm does not mix the two frames through batch
statistics: any gradient from one frame's loss into the other frame's pixels must then come from
the passed queries (or the reused deep features).
"""
import pytest
import torch

from mobileinst_ros.model import build_model
from mobileinst_ros.model.criterion import SetCriterion
from mobileinst_ros.model.matcher import HungarianMatcher
from mobileinst_ros.training.step import TrainStep

torch.set_num_threads(1)
S = 64


@pytest.fixture(scope="module")
def step():
    torch.manual_seed(0)
    model = build_model({"backbone": {"pretrained": False}, "instance_decoder": {"num_queries": 8}}, 2)
    return TrainStep(model, SetCriterion(HungarianMatcher())).eval()


def box_target(ids, offset=0):
    masks = torch.zeros(len(ids), S, S)
    for i in range(len(ids)):
        masks[i, 8 + 20 * i + offset:24 + 20 * i + offset, 10:30] = 1
    return {"labels": torch.tensor([i % 2 for i in range(len(ids))]), "masks": masks, "ids": torch.tensor(ids)}


def frames():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(1, 2, 3, S, S, generator=g)
    images[:, 1] = images[:, 1] * 0.5 + 0.3  # a different second frame
    return images.requires_grad_(True)


def test_passed_predictions_compose_frame_t_queries_with_frame_t_plus_d_features(step):
    images = frames()
    out = step.model(images.flatten(0, 1))
    passed = step.passed_predictions(out, 1)
    decoder = step.model.instance_decoder
    manual = decoder.predict(decoder.forward_local(out["global_queries"][0:1], out["mask_features"][1:2]),
                            out["mask_features"][1:2], out["features"][1][1:2])
    assert torch.allclose(passed["logits"], manual["logits"], atol=1e-6)
    assert torch.allclose(passed["kernels"], manual["kernels"], atol=1e-6)
    assert passed["masks"].shape == (1, 8, S // 8, S // 8)


def test_temporal_loss_reaches_both_frames(step):
    images = frames()
    out = step.model(images.flatten(0, 1))
    losses, _ = step.criterion(step.passed_predictions(out, 1), [box_target([1, 2])])
    losses["total"].backward()
    grad_t, grad_td = images.grad[0, 0].abs().sum(), images.grad[0, 1].abs().sum()
    assert grad_t > 0, "frame t's queries must carry gradient back to frame t"
    assert grad_td > 0


def test_frame_t_plus_d_own_loss_does_not_reach_frame_t(step):
    images = frames()
    out = step.model(images.flatten(0, 1))
    own = {k: out[k][1:2] for k in ("logits", "objectness", "masks")}
    step.criterion(own, [box_target([1, 2])])[0]["total"].backward()
    assert images.grad[0, 0].abs().sum() == 0  # the control: without passing, frames are independent
    assert images.grad[0, 1].abs().sum() > 0


def test_feature_reuse_uses_frame_t_deep_features_and_shared_ids(step):
    images = frames()
    out = step.model(images.flatten(0, 1))
    first = box_target([1, 2])
    second = box_target([2, 7], offset=2)  # id 2 is in both frames, id 1 left, id 7 is new
    indices = [(torch.tensor([3, 5]), torch.tensor([0, 1]))]  # frame t: query 3 -> id 1, query 5 -> id 2
    loss = step._reuse_loss(out, step.reused_mask_features(out, 1), [[first, second]], indices)
    loss.backward()
    assert loss > 0
    assert images.grad[0, 0].abs().sum() > 0  # X4/X5/X6 and kernels of frame t
    assert images.grad[0, 1].abs().sum() > 0  # X3 of frame t+d

    reused = step.reused_mask_features(out, 1)
    direct = step.model.mask_decoder(*(f[1:2] for f in out["features"]))
    assert reused.shape == direct.shape and not torch.allclose(reused, direct, atol=1e-5)

    none_shared = step._reuse_loss(out, reused, [[first, box_target([8, 9])]], indices)
    assert float(none_shared) == 0.0


def test_train_step_reports_every_loss(step):
    step.train()
    try:
        targets = [[box_target([1, 2]), box_target([1, 2], offset=2)]] * 2
        images = torch.cat([frames().detach()] * 2)  # two clips: BatchNorm needs > 1 value per channel
        with_reuse = step(images, targets, reuse=True)
        without = step(images, targets, reuse=False)
    finally:
        step.eval()
    for key in ("main", "aux", "temporal", "reuse", "total"):
        assert torch.isfinite(with_reuse[key])
    assert with_reuse["reuse"] > 0 and without["reuse"] == 0
    assert with_reuse["temporal"] > 0 and with_reuse["temporal"] != with_reuse["main"]
