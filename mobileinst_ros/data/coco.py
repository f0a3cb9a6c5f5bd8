"""COCO-format instance segmentation JSON loaded as one-frame videos (``VideoDataset``).

Segmentations may be polygons or RLE (compressed or not); crowd annotations are left out. Errors
name the file and entry, as in ``ytvis.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from .ytvis import (DatasetError, Instance, Video, VideoDataset, check_images, check_rle, read_dataset_json,
                    require)

__all__ = ["load_coco"]


def segmentation_to_rle(seg: Any, height: int, width: int, where: str) -> dict:
    """COCO polygon list or RLE dict -> one compressed RLE dict of the image size."""
    if isinstance(seg, list):
        if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
                              and all(isinstance(v, (int, float)) for v in p) for p in seg):
            raise DatasetError(f"{where}: polygon segmentation must be a list of [x1, y1, x2, y2, ...] lists "
                               "with at least 3 points")
        return mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    rle = check_rle(seg, height, width, where)
    return mask_utils.frPyObjects(rle, height, width) if isinstance(rle["counts"], list) else rle


def load_coco(json_path: str | Path, image_root: str | Path, require_annotations: bool = True,
              preload: bool = True) -> VideoDataset:
    """Load a COCO instances JSON; each image becomes a one-frame video with the image's id."""
    path = Path(json_path)
    root = Path(image_root)
    data, (classes, category_ids, cat_index) = read_dataset_json(path, "images")

    videos: dict[int, Video] = {}
    for i, img in enumerate(require(data, "images", list, str(path))):
        where = f"{path}: images[{i}]"
        iid = require(img, "id", int, where)
        where = f"{path}: image id {iid}"
        if iid in videos:
            raise DatasetError(f"{where}: duplicate image id")
        name = require(img, "file_name", str, where)
        height, width = require(img, "height", int, where), require(img, "width", int, where)
        if height <= 0 or width <= 0:
            raise DatasetError(f"{where}: height and width must be positive, got {height}x{width}")
        videos[iid] = Video(iid, name, height, width, [root / name])

    annotations = data.get("annotations") or []
    if not isinstance(annotations, list):
        raise DatasetError(f"{path}: 'annotations' must be a list")
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        aid = require(ann, "id", int, where)
        where = f"{path}: annotation id {aid}"
        iid = require(ann, "image_id", int, where)
        if iid not in videos:
            raise DatasetError(f"{where}: unknown image_id {iid}")
        cid = require(ann, "category_id", int, where)
        if cid not in cat_index:
            raise DatasetError(f"{where}: unknown category_id {cid} (categories: {category_ids})")
        if ann.get("iscrowd", 0):
            continue
        if "segmentation" not in ann:
            raise DatasetError(f"{where}: missing key 'segmentation'")
        video = videos[iid]
        rle = segmentation_to_rle(ann["segmentation"], video.height, video.width, f"{where}: segmentation")
        video.instances.append(Instance(aid, cat_index[cid], [rle]))

    dataset = VideoDataset(path, list(videos.values()), classes, category_ids)
    if not dataset.videos:
        raise DatasetError(f"{path}: 'images' is empty")
    if require_annotations and dataset.num_annotations == 0:
        raise DatasetError(f"{path}: no usable (non-crowd) annotations: nothing to train or evaluate on")
    check_images(dataset.videos, path, preload, entry="image id")
    return dataset
