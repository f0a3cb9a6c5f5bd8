"""``model.location_prior``: each kernel ends with a Gaussian log-prior around the query's predicted
centre (5 coefficients of the mask decoder's ``location_basis``), so one kernel stops firing on every
look-alike; the masks stay one dot product (the runtime is unchanged) and association compares the
kernels' appearance part only."""
import numpy as np
import torch

from mobileinst_ros.export.export import export_model
from mobileinst_ros.model import build_model, compute_masks
from mobileinst_ros.model.criterion import SPREAD_PER_STD, location_targets
from mobileinst_ros.model.instance_decoder import PredictionHeads
from mobileinst_ros.model.mask_decoder import coordinate_grid, location_basis
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.tracking.tracker import KernelTracker

TINY = {"backbone": {"pretrained": False}, "kernel_dim": 16, "location_prior": True,
        "mask_decoder": {"dim": 16, "coords": True}, "instance_decoder": {"num_queries": 6, "local": "activation"}}


def _heads_with_location(cx: float, cy: float, sx: float, sy: float) -> tuple[PredictionHeads, torch.Tensor]:
    heads = PredictionHeads(dim=4, num_classes=2, kernel_dim=3, location=True)
    with torch.no_grad():
        heads.location.weight.zero_()
        heads.location.bias.copy_(torch.tensor([np.arctanh(cx), np.arctanh(cy), np.log(sx), np.log(sy)]))
    return heads, torch.zeros(1, 1, 4)


def test_the_coefficients_dotted_with_the_basis_give_the_gaussian_log_prior():
    heads, q = _heads_with_location(0.3, -0.5, 0.2, 0.4)
    coefficients = heads.location_coefficients(heads.centre_and_log_spread(q))[0, 0]
    ref = torch.zeros(1, 1, 6, 10)
    prior = torch.einsum("c,chw->hw", coefficients, location_basis(ref)[0])
    x, y = coordinate_grid(ref)[0]
    expected = -0.5 * (((x - 0.3) / 0.2) ** 2 + ((y + 0.5) / 0.4) ** 2)
    assert torch.allclose(prior, expected, atol=1e-4)


def test_a_kernel_with_the_prior_keeps_one_of_two_look_alikes():
    heads, q = _heads_with_location(-0.5, 0.0, 0.15, 0.3)
    content = torch.zeros(1, 1, 8, 16)
    content[..., 2:6, 2:6] = 1.0   # two identical objects, left and right
    content[..., 2:6, 10:14] = 1.0
    features = torch.cat([content, torch.ones_like(content), torch.zeros_like(content)], dim=1)
    appearance = torch.tensor([[[10.0, -5.0, 0.0]]])  # fires on the content: both objects alike
    kernel = torch.cat([appearance, heads.location_coefficients(heads.centre_and_log_spread(q))], dim=-1)
    both = compute_masks(appearance, features)[0, 0] > 0
    one = compute_masks(kernel, torch.cat([features, location_basis(features)], dim=1))[0, 0] > 0
    assert both[2:6, 2:6].all() and both[2:6, 10:14].all()
    assert one[2:6, 2:6].all() and not one[:, 8:].any()


def test_a_wide_initial_spread_leaves_the_masks_nearly_as_without_the_prior():
    heads = PredictionHeads(dim=8, num_classes=2, kernel_dim=3, location=True)
    coefficients = heads(torch.randn(1, 5, 8) * 0.1)["kernels"][..., 3:]
    prior = torch.einsum("bnc,bchw->bnhw", coefficients, location_basis(torch.zeros(1, 1, 8, 8)))
    assert prior.abs().max() < 0.25  # within [-1, 1]² the prior moves a logit by a fraction


def test_model_exports_and_tracks_with_the_appearance_part(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY, 2).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert out["mask_features"].shape[1] == 16 + 5 and out["kernels"].shape[-1] == 16 + 5
    report = export_model(model, ["a", "b"], tmp_path / "model", [(96, 64)])
    assert max(p.max_abs for p in report) < 1e-2
    engine = Engine(tmp_path / "model", threads=1, score_threshold=0.0)
    assert engine.spec.location_terms == 5 and engine.spec.kernel_dim == 21
    assert engine.appearance(np.zeros((3, 21), np.float32)).shape == (3, 16)
    tracker = KernelTracker(engine, keyframe_interval=2)
    frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
    first, _, again = (tracker.process(frame) for _ in range(3))  # frame 3 is the next keyframe
    ids = sorted(i.track_id for i in first.instances)
    assert ids and sorted(i.track_id for i in again.instances) == ids  # same kernels: same tracks


def test_location_targets_are_the_mask_centroid_and_a_spread_of_its_standard_deviation():
    masks = torch.zeros(2, 8, 16)
    masks[0, 2:6, 4:8] = 1.0   # 4x4 cells: x of cell centres -0.4375..-0.0625, y -0.375..0.375
    masks[1, 0, 0] = 1.0       # one cell: no spread, clamped
    got = location_targets(masks, min_spread=0.04)
    std_x = torch.tensor([-0.4375, -0.3125, -0.1875, -0.0625]).std(unbiased=False)
    assert torch.allclose(got[0, :2], torch.tensor([-0.25, 0.0]), atol=1e-5)
    assert torch.allclose(got[0, 2].exp(), SPREAD_PER_STD * std_x, atol=1e-5)
    assert torch.allclose(got[1, 2:].exp(), torch.tensor([0.04, 0.04]), atol=1e-6)
