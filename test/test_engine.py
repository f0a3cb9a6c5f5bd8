"""The onnxruntime engine against torch: pre-processing, keyframe and non-keyframe graphs, post-processing."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mobileinst_ros.data.transforms import resize_for_model
from mobileinst_ros.export.export import export_model
from mobileinst_ros.masks import mask_bbox
from mobileinst_ros.model import build_model
from mobileinst_ros.model.mobileinst import normalize_images
from mobileinst_ros.runtime.engine import Engine, Features
from mobileinst_ros.runtime.preprocess import make_geometry

RESOLUTIONS = [(128, 128), (160, 96)]


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return build_model({"backbone": {"pretrained": False}}, 5).eval()


@pytest.fixture(scope="module")
def engine(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("h1model") / "model"
    export_model(model, [f"c{i}" for i in range(5)], out, RESOLUTIONS, layout="per-resolution")
    return Engine(out)


def image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    import cv2
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def to_torch(rgb):
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def close(a, b, rtol=1e-3):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    return float(np.abs(a - b).max()) <= rtol * max(1.0, float(np.abs(b).max()))


# --- pre-processing ---------------------------------------------------------------------------------

def network_input(tensor):
    """The engine's uint8 [1,h,w,3] model input as training feeds the network: normalised [1,3,h,w]."""
    return normalize_images(torch.from_numpy(tensor).permute(0, 3, 1, 2))


def test_the_model_input_is_the_pixels_and_the_graph_normalises_them_as_training(model, engine):
    rgb = image(128, 128)
    prepared = engine.prepare(rgb)
    assert prepared.resolution == (128, 128)
    assert prepared.tensor.dtype == np.uint8 and prepared.tensor.shape == (1, 128, 128, 3)
    np.testing.assert_array_equal(prepared.tensor[0], rgb)
    with torch.no_grad():
        expected = model.backbone.forward_shallow(normalize_images(to_torch(rgb))).numpy()
    assert close(engine.shallow(prepared), expected)


def test_stretch_resize_matches_the_model_side_resize(model, engine):
    stretch = Engine(engine.spec.root, resolution=(160, 96), resize="stretch")
    rgb = image(300, 400)
    np.testing.assert_array_equal(stretch.prepare(rgb).tensor[0], resize_for_model(rgb, (96, 160)))


def test_letterbox_keeps_the_aspect_and_pads_with_what_normalises_to_zero(engine):
    square = Engine(engine.spec.root, resolution="128x128")
    rgb = image(64, 128)                       # 2:1 into 128x128: content 128x64 at the top
    prepared = square.prepare(rgb)
    assert prepared.geometry.content_size == (128, 64)
    assert bool((network_input(prepared.tensor)[0, :, 64:, :] == 0).all())
    np.testing.assert_array_equal(prepared.tensor[0, :64], rgb)


def test_views_of_other_layouts_give_the_same_input_as_their_copies(engine):
    square = Engine(engine.spec.root, resolution="128x128")
    rgb = image(64, 128)
    views = {"bgr viewed as rgb": np.ascontiguousarray(rgb[:, :, ::-1])[:, :, ::-1],
             "planar": np.ascontiguousarray(rgb.transpose(2, 0, 1)).transpose(1, 2, 0)}
    for name, view in views.items():
        assert not view.flags.c_contiguous, name
        np.testing.assert_array_equal(square.prepare(view).tensor, square.prepare(rgb).tensor, err_msg=name)


def test_resolution_closest_to_the_aspect_ratio(engine):
    assert engine.pick_resolution((640, 360)) == (160, 96)
    assert engine.pick_resolution((480, 500)) == (128, 128)
    assert Engine(engine.spec.root, resolution="128x128").resolutions == [(128, 128)]


def test_equal_aspects_go_to_the_resolution_closest_in_size():
    # pick_resolution reads only the loaded resolutions: no graphs needed for the rule itself
    loaded = SimpleNamespace(resolutions=[(640, 480), (384, 288), (320, 320)])
    assert Engine.pick_resolution(loaded, (384, 288)) == (384, 288)
    assert Engine.pick_resolution(loaded, (100, 75)) == (384, 288)
    assert Engine.pick_resolution(loaded, (1920, 1440)) == (640, 480)
    assert Engine.pick_resolution(loaded, (500, 480)) == (320, 320)


# --- graphs -----------------------------------------------------------------------------------------

def test_keyframe_outputs_match_torch(model, engine):
    for w, h in RESOLUTIONS:
        prepared = engine.prepare(image(h, w, seed=1))
        features = engine.keyframe_features(prepared)
        decoded = engine.decode(features)
        with torch.no_grad():
            ref = model(network_input(prepared.tensor))
        for name, got in zip(("x3", "x4", "x5", "x6"), (features.x3, features.x4, features.x5, features.x6)):
            assert close(got, ref["features"][("x3", "x4", "x5", "x6").index(name)].numpy()), name
        assert close(features.mask_features, ref["mask_features"].numpy())
        for name in ("logits", "objectness", "kernels"):
            assert close(decoded[name], ref[name][0].numpy()), name


def test_non_keyframe_on_the_keyframe_mask_context_matches_the_whole_mask_decoder_in_torch(model, engine):
    key = engine.prepare(image(128, 128, seed=2))
    now = engine.prepare(image(128, 128, seed=3))
    kf = engine.keyframe_features(key)
    reused = engine.reuse_features(now, kf)
    with torch.no_grad():
        x3 = model.backbone.forward_shallow(network_input(now.tensor))
        x4, x5, x6 = (torch.from_numpy(t) for t in (kf.x4, kf.x5, kf.x6))
        mf = model.mask_decoder(x3, x4, x5, x6)
    assert close(reused.x3, x3.numpy())
    assert close(reused.mask_features, mf.numpy())
    assert reused.x4 is kf.x4 and reused.context is kf.context


def test_threads_setting_changes_nothing_in_the_outputs(engine):
    two = Engine(engine.spec.root, threads=2, resolution="128x128")
    prepared = engine.prepare(image(128, 128, seed=4))
    a = engine.decode(engine.keyframe_features(prepared))
    b = two.decode(two.keyframe_features(prepared))
    assert close(a["kernels"], b["kernels"], rtol=1e-5)


# --- post-processing --------------------------------------------------------------------------------

def _reference_postprocess(logits, objectness, mask_logits, image_size, score_threshold, mask_threshold, top_k):
    """The post-processing written the plain way: every query's mask upsampled to the image
    (bilinear), score = sqrt(p_cls * p_obj) x mean probability inside the mask, top_k above the threshold."""
    import cv2

    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    probs = sig(logits) * sig(objectness)[:, None]
    labels, scores = probs.argmax(1), np.sqrt(probs.max(1))
    up = np.stack([cv2.resize(sig(m), image_size, interpolation=cv2.INTER_LINEAR) for m in mask_logits])
    masks = up > mask_threshold
    maskness = (up * masks).sum((1, 2)) / np.maximum(masks.sum((1, 2)), 1)
    final = scores * maskness
    order = [q for q in np.argsort(-final) if final[q] >= score_threshold][:top_k]
    return {"scores": final[order], "labels": labels[order], "masks": masks[order], "query_index": np.array(order)}


def test_postprocessing_matches_a_plain_reference(engine):
    """Same decoder outputs through the engine and a plain dense reference: same instances,
    scores within maskness-on-the-grid error, masks with high IoU."""
    rng = np.random.default_rng(5)
    n, d, gh, gw = 20, 8, 12, 20                # grid of a 160x96 input
    smooth = [np.kron(rng.normal(size=(3, 5)), np.ones((4, 4))) for _ in range(d)]
    mf = np.stack(smooth).astype(np.float32)[None]
    import cv2
    mf = np.stack([cv2.GaussianBlur(c, (5, 5), 1.5) for c in mf[0]])[None]
    kernels = (3 * rng.normal(size=(n, d))).astype(np.float32)
    decoded = {"logits": (2 * rng.normal(size=(n, 5))).astype(np.float32),
               "objectness": (2 * rng.normal(size=n)).astype(np.float32), "kernels": kernels}
    image_size = (300, 180)                     # (w, h), same aspect: stretch == letterbox
    geometry = make_geometry(image_size, (gw * 8, gh * 8), "stretch")
    features = Features((gw * 8, gh * 8), *(np.zeros(1),) * 4, mf, {})
    engine.score_threshold, engine.max_instances, engine.duplicate_iou = 0.3, 10, 1.0  # the reference has no NMS
    det = engine.select(decoded, features, geometry)
    masks, boxes = engine.to_image(det.mask_logits, geometry)
    assert boxes == [mask_bbox(m) for m in masks]  # the warp's own boxes are the masks' tight boxes
    mask_logits = np.einsum("nd,dhw->nhw", kernels, mf[0])
    ref = _reference_postprocess(decoded["logits"], decoded["objectness"], mask_logits, image_size,
                                 score_threshold=0.3, mask_threshold=engine.mask_threshold, top_k=10)
    assert len(ref["scores"]) > 3
    common = set(det.query_indices.tolist()) & set(ref["query_index"].tolist())
    assert len(common) >= len(ref["scores"]) - 1          # a score near the threshold may flip
    for q in common:
        i = det.query_indices.tolist().index(q)
        j = ref["query_index"].tolist().index(q)
        assert det.class_ids[i] == int(ref["labels"][j])
        assert det.scores[i] == pytest.approx(float(ref["scores"][j]), abs=0.05)
        a, b = masks[i], ref["masks"][j]
        assert np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1) > 0.95