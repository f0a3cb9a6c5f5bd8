"""A tiny YouTube-VIS dataset written on the fly for training tests: coloured boxes moving over noise."""
import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

COLOURS = [(230, 40, 40), (40, 200, 60)]  # RGB per class


def write_tiny_ytvis(root: Path, videos: int = 2, frames: int = 4, size: int = 64, seed: int = 0) -> Path:
    """-> path of annotations.json. Each video: one red box (class 1) and one green box (class 2)
    drifting by 2 px per frame."""
    rng = np.random.default_rng(seed)
    vids, anns = [], []
    for v in range(videos):
        name = f"v{v}"
        (root / "JPEGImages" / name).mkdir(parents=True, exist_ok=True)
        boxes = [(int(rng.integers(2, size // 2)), int(rng.integers(2, size // 2)), int(rng.integers(14, 22)))
                 for _ in COLOURS]
        segs = [[] for _ in COLOURS]
        files = []
        for f in range(frames):
            img = rng.integers(90, 140, (size, size, 3), dtype=np.uint8)
            for k, ((y, x, s), colour) in enumerate(zip(boxes, COLOURS)):
                y0, x0 = y + 2 * f, x + (2 * f if k == 0 else -f)
                mask = np.zeros((size, size), np.uint8)
                mask[y0:y0 + s, max(x0, 0):x0 + s] = 1
                img[mask > 0] = colour
                enc = mask_utils.encode(np.asfortranarray(mask))
                enc["counts"] = enc["counts"].decode("ascii")
                segs[k].append(enc)
            path = f"{name}/{f:05d}.jpg"
            cv2.imwrite(str(root / "JPEGImages" / path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            files.append(path)
        vids.append({"id": v + 1, "width": size, "height": size, "length": frames, "file_names": files})
        for k in range(len(COLOURS)):
            anns.append({"id": len(anns) + 1, "video_id": v + 1, "category_id": k + 1, "iscrowd": 0,
                         "segmentations": segs[k]})
    data = {"videos": vids, "annotations": anns, "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}]}
    out = root / "annotations.json"
    out.write_text(json.dumps(data))
    return out
