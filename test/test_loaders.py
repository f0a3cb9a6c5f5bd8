"""YouTube-VIS and COCO loaders on small hand-made files, clip pairs, and clear errors on bad input."""
import json

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from mobileinst_ros.data.clips import ClipPairDataset, collate_pairs
from mobileinst_ros.data.coco import load_coco
from mobileinst_ros.data.transforms import ClipAugment
from mobileinst_ros.data.ytvis import DatasetError, load_ytvis

torch.set_num_threads(1)
H, W, T = 48, 64, 3


def rect(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def compressed(mask):
    enc = mask_utils.encode(np.asfortranarray(mask))
    enc["counts"] = enc["counts"].decode("ascii")
    return enc


def uncompressed(mask):
    """The real YouTube-VIS 2019 train.json stores uncompressed counts lists."""
    from mobileinst_ros.masks import encode_mask
    return {"size": [H, W], "counts": encode_mask(mask.astype(bool)).tolist()}


def write_frames(root, name, n):
    (root / name).mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        img = np.full((H, W, 3), 40 * i, np.uint8)
        img[10:20, 10:30] = (0, 0, 255)  # BGR red: RGB (255, 0, 0)
        cv2.imwrite(str(root / name / f"{i:05d}.jpg"), img)
        files.append(f"{name}/{i:05d}.jpg")
    return files


@pytest.fixture
def ytvis(tmp_path):
    """Two videos in the 2019 layout, with its extra keys (license, areas/bboxes with nulls)."""
    root = tmp_path / "JPEGImages"
    videos = [{"id": 1, "width": W, "height": H, "length": T, "date_captured": "", "license": 1, "flickr_url": "",
               "coco_url": "", "file_names": write_frames(root, "vid_a", T)},
              {"id": 2, "width": W, "height": H, "length": 2, "file_names": write_frames(root, "vid_b", 2)}]
    anns = [
        {"id": 10, "video_id": 1, "category_id": 7, "iscrowd": 0, "width": W, "height": H, "length": 1,
         "segmentations": [uncompressed(rect(10, 20, 10, 30)), None, uncompressed(rect(12, 22, 10, 30))],
         "areas": [200, None, 200], "bboxes": [[10, 10, 20, 10], None, [10, 12, 20, 10]]},
        {"id": 11, "video_id": 1, "category_id": 3, "iscrowd": 0,
         "segmentations": [compressed(rect(30, 40, 40, 60))] * T},
        {"id": 12, "video_id": 2, "category_id": 3, "iscrowd": 0, "segmentations": [compressed(rect(0, 8, 0, 8)), None]},
    ]
    data = {"info": {}, "licenses": [], "videos": videos, "annotations": anns,
            "categories": [{"supercategory": "x", "id": 7, "name": "person"}, {"id": 3, "name": "cat"}]}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(data))
    return path, data


def rewrite(path, data):
    path.write_text(json.dumps(data))
    return path


def test_youtube_vis_loads(ytvis):
    path, _ = ytvis
    ds = load_ytvis(path)
    assert ds.classes == ["cat", "person"]  # sorted by category id: 3, 7
    assert ds.category_ids == [3, 7]
    assert [v.length for v in ds.videos] == [3, 2]
    frame = ds.frame(0, 0)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    assert frame[15, 20, 0] > 200 and frame[15, 20, 2] < 60  # RGB order
    ids, labels, masks = ds.targets(0, 1)  # instance 10 is absent in frame 1
    assert ids.tolist() == [11] and labels.tolist() == [0] and masks.shape == (1, H, W)
    ids, labels, masks = ds.targets(0, 2)
    assert ids.tolist() == [10, 11] and labels.tolist() == [1, 0]
    assert masks[0].sum() == 200 and masks[0][12:22, 10:30].all()


def test_official_valid_json_without_annotations(ytvis, tmp_path):
    path, data = ytvis
    data = {k: v for k, v in data.items() if k != "annotations"}
    ds = load_ytvis(rewrite(path, data), require_annotations=False)
    assert ds.num_annotations == 0 and len(ds.videos) == 2
    with pytest.raises(DatasetError, match="no usable annotations"):
        load_ytvis(path)


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d["annotations"][1].update(category_id=99), "annotation id 11: unknown category_id 99"),
    (lambda d: d["annotations"][0].update(video_id=5), "annotation id 10: unknown video_id 5"),
    (lambda d: d["annotations"][2]["segmentations"].pop(), "annotation id 12: 1 segmentations for a video of 2"),
    (lambda d: d["videos"][1].pop("file_names"), "video id 2: missing key 'file_names'"),
    (lambda d: d["videos"][0].update(height="48"), "video id 1: 'height' must be int"),
    (lambda d: d["annotations"][1]["segmentations"].__setitem__(0, {"size": [10, 10], "counts": "abc"}),
     r"annotation id 11: segmentations\[0\]: RLE size \[10, 10\] does not match"),
    (lambda d: d.update(annotations=[]), "no usable annotations"),
    (lambda d: d.update(categories=[]), "'categories' is empty"),
])
def test_youtube_vis_errors_name_file_and_entry(ytvis, breakage, message):
    path, data = ytvis
    breakage(data)
    with pytest.raises(DatasetError, match=message) as err:
        load_ytvis(rewrite(path, data))
    assert str(path) in str(err.value)


def test_malformed_json_and_missing_images(ytvis):
    path, _ = ytvis
    text = path.read_text()
    bad = path.with_name("bad.json")
    bad.write_text(text[:-10])
    with pytest.raises(DatasetError, match=r"bad.json: not valid JSON"):
        load_ytvis(bad, path.parent / "JPEGImages")
    (path.parent / "JPEGImages" / "vid_b" / "00001.jpg").unlink()
    with pytest.raises(DatasetError, match=r"video 2 \(vid_b\): image file not found: .*vid_b/00001.jpg"):
        load_ytvis(path)


def test_coco_loads_polygons_and_rle_as_one_frame_videos(tmp_path):
    write_frames(tmp_path / "images", "set", 2)
    data = {
        "images": [{"id": 5, "file_name": "set/00000.jpg", "height": H, "width": W},
                   {"id": 6, "file_name": "set/00001.jpg", "height": H, "width": W}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 1, "iscrowd": 0,
             "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]], "area": 200, "bbox": [10, 10, 20, 10]},
            {"id": 2, "image_id": 6, "category_id": 2, "iscrowd": 0, "segmentation": compressed(rect(0, 5, 0, 5))},
            {"id": 3, "image_id": 6, "category_id": 2, "iscrowd": 1, "segmentation": uncompressed(rect(5, 9, 5, 9))},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    path = tmp_path / "instances.json"
    ds = load_coco(rewrite(path, data), tmp_path / "images")
    assert [v.length for v in ds.videos] == [1, 1]
    ids, labels, masks = ds.targets(0, 0)
    assert ids.tolist() == [1] and labels.tolist() == [0]
    assert masks[0][12:18, 12:28].all() and not masks[0][30:, :].any()
    ids, labels, _ = ds.targets(1, 0)
    assert ids.tolist() == [2]  # the crowd region is not an instance

    data["annotations"][0]["category_id"] = 9
    with pytest.raises(DatasetError, match="instances.json: annotation id 1: unknown category_id 9"):
        load_coco(rewrite(path, data), tmp_path / "images")
    data["annotations"][0].update(category_id=1, segmentation=[[1, 2, 3]])
    with pytest.raises(DatasetError, match="annotation id 1: segmentation: polygon"):
        load_coco(rewrite(path, data), tmp_path / "images")
    data["annotations"][0]["segmentation"] = [[10, 10, 30, 10, 30, 20]]
    data["images"][1]["file_name"] = "set/missing.jpg"
    with pytest.raises(DatasetError, match="image id 6 .*image file not found"):
        load_coco(rewrite(path, data), tmp_path / "images")


def test_clip_pairs_share_one_augmentation(ytvis):
    path, _ = ytvis
    ds = load_ytvis(path)
    pairs = ClipPairDataset(ds, ClipAugment((32, 32), scale_range=(0.9, 1.4), flip_prob=0.5), max_gap=2, seed=3)
    for index in range(12):
        sample = pairs[index]
        assert sample["images"].shape == (2, 3, 32, 32) and sample["images"].dtype == torch.uint8
        first, second = sample["targets"]
        # instance 11 does not move in the source video: same augmentation -> identical masks
        if 11 in first["ids"].tolist() and 11 in second["ids"].tolist():
            a = first["masks"][first["ids"].tolist().index(11)]
            b = second["masks"][second["ids"].tolist().index(11)]
            assert torch.equal(a, b)
        for t in (first, second):
            assert t["masks"].shape[1:] == (32, 32) and (t["masks"].flatten(1).sum(1) > 0).all()
    again = pairs[5]
    assert torch.equal(again["images"], pairs[5]["images"])  # deterministic per index
    batch = collate_pairs([pairs[0], pairs[1]])
    assert batch["images"].shape == (2, 2, 3, 32, 32) and len(batch["targets"]) == 2


def test_flip_moves_masks_with_images():
    aug = ClipAugment((48, 64), scale_range=(1.0, 1.0), flip_prob=1.0)
    params = aug.sample(np.random.default_rng(0), H, W)
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :8] = 255
    masks = rect(0, H, 0, 8)[None]
    out_img, out_mask = aug.image(image, params), aug.masks(masks, params)
    assert out_img[:, -8:].min() == 255 and out_mask[0][:, -8:].all() and not out_mask[0][:, :-8].any()
