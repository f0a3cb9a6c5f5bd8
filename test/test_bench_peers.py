"""The peer heads' numpy post-processing used by mobileinst-bench: FastNMS, priors, mask assembly."""
import numpy as np

from mobileinst_ros.bench.peers import YOLACT_ASPECTS, YOLACT_LEVELS, _fast_nms, yolact_postprocess, yolact_priors
from mobileinst_ros.runtime.preprocess import make_geometry


def test_fast_nms_drops_boxes_overlapping_a_better_one():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    kept = _fast_nms(boxes, scores, iou_threshold=0.5, top_k=10)
    assert sorted(kept.tolist()) == [2, 3]


def test_priors_cover_every_level_and_aspect_in_head_order():
    priors = yolact_priors((64, 32))
    per_level = [(-(-32 // s)) * (-(-64 // s)) for s in YOLACT_LEVELS]
    assert len(priors) == sum(per_level) * len(YOLACT_ASPECTS)
    assert priors[0].tolist() == [4.0, 4.0, 24.0, 24.0]


def test_yolact_masks_are_cropped_to_their_box_at_the_image_size():
    priors = yolact_priors((64, 64))
    n, classes, protos = len(priors), 3, 2
    logits = np.full((1, n, classes + 1), -10.0, np.float32)
    logits[0, :, 0] = 10.0                                   # background everywhere...
    logits[0, 0] = (-10.0, -10.0, 10.0, -10.0)               # ...but one anchor (24 px box at 4, 4)
    outputs = {"class_logits": logits, "boxes": np.zeros((1, n, 4), np.float32),
               "coefficients": np.ones((1, n, protos), np.float32),
               "prototypes": np.full((1, protos, 16, 16), 5.0, np.float32)}
    masks = yolact_postprocess(outputs, priors, make_geometry((128, 128), (64, 64), "letterbox"), max_instances=5)
    assert masks.shape == (1, 128, 128)
    ys, xs = np.nonzero(masks[0])
    assert xs.max() < 40 and ys.max() < 40 and masks[0, 0:30, 0:30].all()
