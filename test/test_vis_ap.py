"""YouTube-VIS AP (IoU over whole tracks) on hand-made videos, cross-checked against numpy."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mobileinst_ros.evaluation.vis_ap import rle_counts, track_rle, youtube_vis_ap

H, W, T = 8, 10, 3


def rle(mask, compressed=True):
    enc = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        enc["counts"] = enc["counts"].decode("ascii")
        return enc
    from mobileinst_ros.masks import encode_mask
    return {"size": [mask.shape[0], mask.shape[1]], "counts": encode_mask(mask).tolist()}


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def make_gt(tracks):
    """tracks: list of (video_id, category_id, [mask or None per frame])."""
    videos = [{"id": v, "height": H, "width": W, "length": T, "file_names": [f"v{v}/{i}.jpg" for i in range(T)]}
              for v in sorted({t[0] for t in tracks})]
    anns = [{"id": i + 1, "video_id": v, "category_id": c, "iscrowd": 0,
             "segmentations": [None if m is None else rle(m) for m in masks]}
            for i, (v, c, masks) in enumerate(tracks)]
    return {"videos": videos, "annotations": anns,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def pred(v, c, score, masks, compressed=True):
    return {"video_id": v, "category_id": c, "score": score,
            "segmentations": [None if m is None else rle(m, compressed) for m in masks]}


def direct_track_iou(a, b):
    inter = sum(np.logical_and(x, y).sum() for x, y in zip(a, b) if x is not None and y is not None)
    area = lambda ms: sum(m.sum() for m in ms if m is not None)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


TRACK_A = [box(0, 4, 0, 4), box(1, 5, 1, 5), None]
TRACK_B = [None, box(4, 8, 5, 10), box(3, 7, 6, 10)]


def test_track_rle_is_side_by_side_concatenation():
    rle_, mean_area = track_rle([rle(m) if m is not None else None for m in TRACK_A], H, W)
    side_by_side = np.concatenate([m if m is not None else np.zeros((H, W), bool) for m in TRACK_A], axis=1)
    decoded = mask_utils.decode(mask_utils.frPyObjects(rle_, *rle_["size"]))
    assert np.array_equal(decoded.astype(bool), side_by_side)
    assert mean_area == 16.0  # two frames of 16 pixels; the absent frame does not count


def test_compressed_and_uncompressed_counts_agree():
    m = box(2, 7, 3, 9)
    assert rle_counts(rle(m), H, W) == rle_counts(rle(m, compressed=False), H, W)
    assert rle_counts(None, H, W) == [H * W]


def test_perfect_predictions_give_ap_1():
    gt = make_gt([(1, 1, TRACK_A), (1, 2, TRACK_B), (2, 1, TRACK_B)])
    preds = [pred(1, 1, 0.9, TRACK_A), pred(1, 2, 0.8, TRACK_B, compressed=False), pred(2, 1, 0.7, TRACK_B)]
    result = youtube_vis_ap(gt, preds)
    assert result["AP"] == pytest.approx(1.0)
    assert result["AP50"] == pytest.approx(1.0)
    assert result["AR1"] == pytest.approx(1.0)
    assert result["per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}


def test_no_predictions_give_ap_0():
    assert youtube_vis_ap(make_gt([(1, 1, TRACK_A)]), [])["AP"] == 0.0


def test_hand_case_with_known_track_iou():
    # the prediction covers frame 0 exactly, half of frame 1 and a spurious 8 pixels in frame 2
    p = [box(0, 4, 0, 4), box(1, 5, 1, 3), box(0, 2, 0, 4)]
    iou = direct_track_iou(TRACK_A, p)
    assert iou == pytest.approx((16 + 8) / (32 + 8))  # 0.6: matched at IoU thresholds 0.50, 0.55, 0.60
    result = youtube_vis_ap(make_gt([(1, 1, TRACK_A)]), [pred(1, 1, 0.9, p)])
    assert result["AP"] == pytest.approx(3 / 10)
    assert result["AP50"] == pytest.approx(1.0)
    assert result["AP75"] == pytest.approx(0.0)


def test_whole_track_iou_differs_from_per_frame_mean():
    # per-frame IoUs 1.0 and 0.0 average to 0.5 (a match at AP50), but frame 1 has 4x the area of
    # frame 0, so the whole-track IoU is far lower and the prediction must not match
    gt_track = [box(0, 2, 0, 2), box(0, 8, 0, 2), None]
    p = [box(0, 2, 0, 2), box(0, 8, 8, 10), None]
    iou = direct_track_iou(gt_track, p)  # 4 / (20 + 20 - 4) = 0.111: unmatched at every threshold
    assert iou == pytest.approx(4 / 36)
    result = youtube_vis_ap(make_gt([(1, 1, gt_track)]), [pred(1, 1, 0.9, p)])
    assert result["AP50"] == 0.0


def test_ranking_across_videos_matches_direct_computation():
    # two ground-truth tracks, three predictions: the best-scored is a false positive
    gt = make_gt([(1, 1, TRACK_A), (2, 1, TRACK_B)])
    preds = [pred(1, 1, 0.95, TRACK_B), pred(1, 1, 0.9, TRACK_A), pred(2, 1, 0.5, TRACK_B)]
    assert direct_track_iou(TRACK_A, TRACK_B) == 0.0
    # precision/recall: FP (0/1), TP (1/2, r=.5), TP (2/3, r=1) -> interpolated precision 2/3 at every
    # recall level (COCO's 101-point interpolation takes the max precision to the right)
    result = youtube_vis_ap(gt, preds)
    assert result["AP"] == pytest.approx(2 / 3, abs=1e-6)


def test_bad_predictions_are_named():
    gt = make_gt([(1, 1, TRACK_A)])
    with pytest.raises(ValueError, match="prediction 0: unknown video_id 9"):
        youtube_vis_ap(gt, [pred(9, 1, 0.5, TRACK_A)])
    with pytest.raises(ValueError, match="prediction 0: 2 segmentations"):
        youtube_vis_ap(gt, [pred(1, 1, 0.5, TRACK_A[:2])])
    with pytest.raises(ValueError, match="unknown category_id 7"):
        youtube_vis_ap(gt, [pred(1, 7, 0.5, TRACK_A)])


def test_module_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, mobileinst_ros.evaluation.vis_ap; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
