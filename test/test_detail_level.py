"""The mask decoder's stride-4 detail level (``mask_decoder.detail_dim``): masks at stride 4 as the stride-8 logits
upsampled plus each kernel's detail part on features of X2; the same masks from torch, from the exported graphs
through the runtime (detail features packed on the stride-8 grid), and on non-keyframes that run crops."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mobileinst_ros.data.clips import ClipPairDataset, collate_pairs
from mobileinst_ros.data.synth import generate_video
from mobileinst_ros.data.transforms import ClipAugment
from mobileinst_ros.data.ytvis import load_ytvis
from mobileinst_ros.export.export import export_model
from mobileinst_ros.model import build_model, compute_masks, normalize_images
from mobileinst_ros.model.criterion import SetCriterion
from mobileinst_ros.model.mask_decoder import pack_detail
from mobileinst_ros.model.matcher import HungarianMatcher
from mobileinst_ros.runtime.engine import Engine
from mobileinst_ros.runtime import postprocess
from mobileinst_ros.runtime.postprocess import mask_logits
from mobileinst_ros.tracking.tracker import KernelTracker
from mobileinst_ros.training.step import TrainStep
from mobileinst_ros.training.train import init_from_checkpoint
from tiny_ytvis import write_tiny_ytvis

torch.set_num_threads(1)
TINY = {"backbone": {"pretrained": False, "skip_blocks": [2, 7, 10, 13, 14]}, "kernel_dim": 16,
        "mask_decoder": {"dim": 16, "fuse": "sum", "coords": True, "detail_dim": 4},
        "instance_decoder": {"num_queries": 6, "local": "activation"}}
SIZE = (96, 64)
LARGE = (384, 288)  # where crops cost less than the whole image


def test_masks_at_stride_4_are_the_stride_8_logits_upsampled_plus_the_detail_part():
    torch.manual_seed(0)
    kernels, features, detail = torch.randn(2, 5, 16 + 4), torch.randn(2, 16, 6, 8), torch.randn(2, 4, 12, 16)
    masks = compute_masks(kernels, features, detail)
    assert masks.shape == (2, 5, 12, 16)
    coarse = compute_masks(kernels[..., :16], features)
    expected = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False) \
        + torch.einsum("bne,behw->bnhw", kernels[..., 16:], detail)
    assert torch.allclose(masks, expected, atol=1e-5)


@pytest.mark.parametrize("count", [1, 7])
def test_the_runtime_unpacks_the_packed_detail_features_as_torch_computes_the_masks(count):
    torch.manual_seed(count)
    kernels, features, detail = torch.randn(1, count, 16 + 4), torch.randn(1, 16, 5, 7), torch.randn(1, 4, 10, 14)
    packed = pack_detail(features, detail)
    assert packed.shape == (1, 16 + 16, 5, 7)
    got = mask_logits(kernels[0].numpy(), packed[0].numpy(), detail_dim=4)
    np.testing.assert_allclose(got, compute_masks(kernels, features, detail)[0].numpy(), rtol=0, atol=1e-4)
    assert mask_logits(kernels[0, :0].numpy(), packed[0].numpy(), detail_dim=4).shape == (0, 10, 14)
    unpacked = postprocess.unpack_detail(packed[0, 16:].numpy(), 4)
    np.testing.assert_array_equal(unpacked, detail[0].numpy())
    np.testing.assert_array_equal(postprocess.pack_detail(unpacked), packed[0, 16:].numpy())


def test_a_model_with_a_detail_level_gives_stride_4_masks():
    model = build_model(TINY, 2).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, SIZE[1], SIZE[0]))
    assert model.mask_stride == 4 and out["kernels"].shape[-1] == 16 + 4
    assert out["masks"].shape[-2:] == (SIZE[1] // 4, SIZE[0] // 4)
    assert out["mask_features"].shape[-2:] == (SIZE[1] // 8, SIZE[0] // 8)
    with pytest.raises(ValueError, match="detail_dim and location_prior"):
        build_model({**TINY, "location_prior": True}, 2)
    with pytest.raises(ValueError, match="needs a backbone with stride-4 features"):
        build_model({"backbone": {"name": "topformer_base"}, "mask_decoder": {"detail_dim": 4}}, 2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(TINY, 2).eval()
    out = tmp_path_factory.mktemp("detail") / "model"
    report = export_model(model, ["a", "b"], out, [SIZE, LARGE])
    assert max(p.max_abs for p in report) < 1e-2
    return model, out


def test_the_exported_model_gives_torchs_stride_4_masks(exported):
    model, path = exported
    engine = Engine(path, score_threshold=0.0)
    assert (engine.spec.mask_stride, engine.spec.detail_dim, engine.spec.kernel_dim) == (4, 4, 20)
    image = np.random.default_rng(0).integers(0, 256, (SIZE[1], SIZE[0], 3), np.uint8)
    features = engine.keyframe_features(engine.prepare(image))
    decoded = engine.decode(features)
    got = mask_logits(decoded["kernels"], features.mask_features[0], engine.spec.detail_dim)
    with torch.no_grad():
        expected = model(normalize_images(torch.from_numpy(image).permute(2, 0, 1)[None]))["masks"][0].numpy()
    assert got.shape == expected.shape == (6, SIZE[1] // 4, SIZE[0] // 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-2 * np.abs(expected).max())
    instance = engine.infer(image)[0]
    assert instance.mask.shape == image.shape[:2]


def test_crops_of_the_shallow_graph_give_the_whole_images_packed_detail_features(exported):
    _, path = exported
    engine = Engine(path, resolution=LARGE)
    assert engine.shallow_context(LARGE) is not None  # X2's detail features see less than x3: x3's context suffices
    prepared = engine.prepare(generate_video(seed=2000, index=1, frames=1, width=LARGE[0], height=LARGE[1]).frames[0])
    whole = engine.shallow(prepared)
    assert whole.shape[1] == 40 + 4 * 4  # Lite0's x3, then the packed detail features
    window = (10, 12, 20, 30)
    got = engine.shallow_in_windows(prepared, np.zeros_like(whole), [window])[..., 10:20, 12:30]
    np.testing.assert_allclose(got, whole[..., 10:20, 12:30], rtol=0, atol=1e-4 * np.abs(whole).max())


def test_a_shrunk_non_keyframe_resizes_the_detail_features_at_their_own_stride(exported, monkeypatch):
    _, path = exported
    engine = Engine(path, resolution=LARGE)
    shallow = engine._graphs[LARGE]["shallow"]

    def ramp(image):  # x3 of zeros and detail features that grow by 1 per stride-4 column
        h, w = image.shape[1] // 4, image.shape[2] // 4
        detail = np.broadcast_to(np.arange(w, dtype=np.float32), (4, h, w))
        return {"x3": np.concatenate([np.zeros((40, h // 2, w // 2), np.float32),
                                      postprocess.pack_detail(np.ascontiguousarray(detail))])[None]}

    monkeypatch.setattr(shallow, "run", ramp)
    prepared = engine.prepare(np.zeros((LARGE[1], LARGE[0], 3), np.uint8))
    shrunk = engine.shallow_scaled(prepared, 0.5)
    assert shrunk.shape == (1, 40 + 16, LARGE[1] // 8, LARGE[0] // 8)
    row = postprocess.unpack_detail(shrunk[0, 40:], 4)[0, 10]
    # a ramp stays a ramp: resizing the packed channels as stride-8 maps would repeat values at every other column
    assert (np.diff(row[2:-2]) > 0).all()


def test_non_keyframes_on_crops_give_the_whole_images_stride_4_masks(exported, shallow_sizes):
    _, path = exported
    engine = Engine(path, resolution=LARGE, score_threshold=0.0, split_components=True, max_instances=3)
    frames = generate_video(seed=2000, index=1, frames=3, width=LARGE[0], height=LARGE[1]).frames
    results = {}
    for crops in (False, True):
        shallow_sizes.clear()
        tracker = KernelTracker(engine, keyframe_interval=3, non_keyframe_crops=crops)
        results[crops] = [tracker.process(f) for f in frames]
    assert any(size != (LARGE[1], LARGE[0]) for size in shallow_sizes), "the non-keyframes ran crops"
    for whole, cropped in zip(results[False], results[True]):
        assert [i.track_id for i in cropped.instances] == [i.track_id for i in whole.instances]
        for a, b in zip(whole.instances, cropped.instances):
            assert (a.mask ^ b.mask).sum() <= 0.01 * max((a.mask | b.mask).sum(), 1)


def test_training_supervises_the_detail_level(tmp_path):
    ds = load_ytvis(write_tiny_ytvis(tmp_path, videos=2, frames=3))
    pairs = ClipPairDataset(ds, ClipAugment((64, 64), scale_range=(1.0, 1.0), flip_prob=0.0), max_gap=1)
    batch = collate_pairs([pairs[i] for i in range(2)])
    torch.manual_seed(0)
    model = build_model(TINY, len(ds.classes))
    step = TrainStep(model, SetCriterion(HungarianMatcher()))
    losses = step(normalize_images(batch["images"]), batch["targets"], reuse=True)
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses["reuse"]) > 0
    losses["total"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mask_decoder.detail.parameters())


def test_a_detail_level_added_to_a_trained_model_starts_from_its_masks(tmp_path):
    """Fine-tuning a model without a detail level into one with it (``--init-from``): the kernels' first K
    elements load, the detail elements start at zero, so the first masks are the source's upsampled."""
    torch.manual_seed(0)
    without = {**TINY, "mask_decoder": {**TINY["mask_decoder"], "detail_dim": 0}}
    source = build_model(without, num_classes=3).eval()
    torch.save({"model": source.state_dict()}, tmp_path / "source.pt")
    grown = build_model(TINY, num_classes=3).eval()
    skipped = init_from_checkpoint(grown, tmp_path / "source.pt")
    assert skipped and all(name.startswith("mask_decoder.detail.") for name in skipped)
    images = normalize_images(torch.randint(0, 255, (1, 3, *SIZE[::-1])))
    with torch.no_grad():
        before, after = source(images), grown(images)
    expected = F.interpolate(before["masks"], scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(after["masks"], expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after["logits"], before["logits"])
