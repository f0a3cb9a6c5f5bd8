"""``mobileinst-synth``: synthetic videos for video instance segmentation, deterministic by seed.

Textured objects of six shape classes (``synth_assets.CATEGORIES``) move, rotate, scale, cross and
occlude each other, enter and leave the frame, over panning crops of scikit-image's photographs.
Several instances of one class share a video and are sometimes identical twins, so telling them
apart needs tracking.

Output is a YouTube-VIS 2019 dataset (docs/design.md):
``<out>/JPEGImages/<video>/<frame>.jpg`` and ``<out>/annotations.json`` whose segmentations are
pycocotools compressed RLE dicts (``counts`` a str) of the *visible* mask after occlusion, or null
where the object is out of frame or fully hidden. Video ``i`` of seed ``s`` depends only on
``(s, i)``: the same arguments give byte-identical files. ``--bag`` also writes the frames and ground
truth to a rosbag2 (``data/bags.py`` describes its topics), its stamps at ``--fps``.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from mobileinst_ros.data.bags import BagError, write_dataset_bag
from mobileinst_ros.data.synth_assets import (
    CATEGORIES,
    TEMPLATE_RADIUS,
    TEMPLATE_SIZE,
    make_background_strip,
    make_object_template,
)
from mobileinst_ros.masks import mask_bbox

__all__ = ["SynthVideo", "generate_video", "video_name", "write_dataset", "main"]

JPEG_QUALITY = 92


@dataclass(frozen=True)
class _Trajectory:
    """Pose of one object over time, in image pixels; frame index ``t`` is a float."""

    anchor: np.ndarray  # (2,) centre at anchor_time, before camera motion
    anchor_time: float
    velocity: np.ndarray  # (2,) px / frame
    accel: np.ndarray  # (2,) px / frame^2, bends the path
    angle0: float
    spin: float  # rad / frame
    radius0: float
    growth: float  # log-scale change per frame (approach / recede)
    wobble: tuple[float, float, float]  # amplitude, rad / frame, phase of a breathing scale change

    def center(self, t: float, camera: np.ndarray) -> np.ndarray:
        dt = t - self.anchor_time
        return self.anchor + self.velocity * dt + 0.5 * self.accel * dt * dt - camera

    def radius(self, t: float) -> float:
        amp, freq, phase = self.wobble
        return self.radius0 * math.exp(self.growth * t) * (1 + amp * math.sin(freq * t + phase))

    def angle(self, t: float) -> float:
        return self.angle0 + self.spin * t


@dataclass(frozen=True)
class _Object:
    category_id: int  # 1-based, index into CATEGORIES + 1
    texture: np.ndarray  # (S, S, 3) uint8 template
    alpha: np.ndarray  # (S, S) uint8 template coverage
    trajectory: _Trajectory


@dataclass(frozen=True)
class SynthVideo:
    """One rendered clip: RGB frames (T x (H, W, 3) uint8) and, per object back to front, its
    category id and per-frame visible mask ((H, W) bool, or None where nothing of it shows)."""

    frames: list[np.ndarray]
    category_ids: list[int]
    masks: list[list[np.ndarray | None]]


def video_name(seed: int, index: int) -> str:
    """Folder name of video ``index`` of ``seed``; the seed keeps train and test sets apart."""
    return f"s{seed}_v{index:05d}"


def _sample_categories(rng: np.random.Generator, count: int) -> tuple[list[int], list[int]]:
    """Category ids and appearance seeds; a twin group shares both, so its members look identical."""
    categories = [int(c) for c in rng.integers(1, len(CATEGORIES) + 1, size=count)]
    appearance = [int(a) for a in rng.integers(0, 2**31, size=count)]
    if count >= 2 and rng.random() < 0.6:
        group = rng.choice(count, size=int(rng.integers(2, min(count, 3) + 1)), replace=False)
        identical = rng.random() < 0.5  # else same class, different texture: a look-alike
        for member in group[1:]:
            categories[member] = categories[group[0]]
            if identical:
                appearance[member] = appearance[group[0]]
    return categories, appearance


def _border_anchor(rng: np.random.Generator, width: int, height: int, margin: float,
                   speed: float, inward: bool) -> tuple[np.ndarray, np.ndarray]:
    """A point just outside one image side and a velocity crossing that side (in or out)."""
    side = int(rng.integers(4))
    u = rng.uniform(0.15, 0.85)
    normals = [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)]  # outward: top, right, bottom, left
    points = [(u * width, -margin), (width + margin, u * height), (u * width, height + margin),
              (-margin, u * height)]
    normal = np.array(normals[side])
    turn = rng.uniform(-0.7, 0.7)
    c, s = math.cos(turn), math.sin(turn)
    direction = np.array([c * normal[0] - s * normal[1], s * normal[0] + c * normal[1]])
    return np.array(points[side]), direction * speed * (-1.0 if inward else 1.0)


def _sample_trajectory(rng: np.random.Generator, previous: list[_Trajectory], frames: int,
                       width: int, height: int, camera: np.ndarray) -> _Trajectory:
    short = min(width, height)
    speed = short * rng.uniform(0.006, 0.04)
    heading = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([math.cos(heading), math.sin(heading)])
    radius0 = short * rng.uniform(0.07, 0.19)
    growth = rng.uniform(-0.4, 0.4) / max(frames, 8)
    wobble = (rng.uniform(0, 0.15), rng.uniform(0.2, 0.8), rng.uniform(0, 2 * np.pi))
    last = frames - 1
    r_max = radius0 * math.exp(abs(growth) * last) * (1 + wobble[0])
    mode = rng.choice(["wander", "cross", "enter", "leave"], p=[0.25, 0.35, 0.2, 0.2])
    if mode == "cross" and previous:
        # Meet an earlier object at a random time: a crossing with occlusion (z-order decides who).
        other = previous[int(rng.integers(len(previous)))]
        anchor_time = rng.uniform(0.2, 0.8) * last
        cam = camera[int(round(anchor_time))]
        anchor = other.center(anchor_time, cam) + cam + rng.normal(0, 0.25 * radius0, size=2)
    elif mode == "enter":
        anchor_time = rng.uniform(0.0, 0.6) * last
        anchor, velocity = _border_anchor(rng, width, height, r_max + 2, speed + 0.01 * short, True)
        anchor = anchor + camera[int(round(anchor_time))]
    elif mode == "leave":
        anchor_time = rng.uniform(0.4, 1.0) * last
        anchor, velocity = _border_anchor(rng, width, height, r_max + 2, speed + 0.01 * short, False)
        anchor = anchor + camera[int(round(anchor_time))]
    else:
        anchor_time = 0.5 * last
        anchor = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height])
        anchor = anchor + camera[int(round(anchor_time))]
    perpendicular = np.array([-velocity[1], velocity[0]])
    accel = perpendicular * rng.uniform(-0.04, 0.04)
    return _Trajectory(anchor, float(anchor_time), velocity, accel, rng.uniform(0, 2 * np.pi),
                       rng.uniform(-0.2, 0.2), radius0, growth, wobble)


def _camera_path(rng: np.random.Generator, frames: int, strip: np.ndarray, width: int,
                 height: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop origin of the background in each frame ((T, 2) float, x then y) and its shift (T, 2)."""
    room = np.array([strip.shape[1] - width, strip.shape[0] - height], np.float64) - 1
    max_step = min(width, height) * 0.005 + 0.5
    step = rng.uniform(-max_step, max_step, size=2)
    step = np.clip(step, -0.9 * room / max(frames - 1, 1), 0.9 * room / max(frames - 1, 1))
    shift = np.arange(frames)[:, None] * step[None, :]
    low = np.maximum(0, -shift.min(axis=0))
    high = room - shift.max(axis=0)
    origin = low + rng.uniform(0, 1, size=2) * np.maximum(high - low, 0)
    return origin[None, :] + shift, shift


def _warp(obj: _Object, center: np.ndarray, angle: float, radius: float, width: int,
          height: int) -> tuple[tuple[int, int], np.ndarray, np.ndarray] | None:
    """Texture and alpha of ``obj`` warped into the frame region it covers, or None if off-frame.

    Returns ((x0, y0), texture (h, w, 3) uint8, alpha (h, w) uint8) for the region starting at x0, y0.
    """
    extent = radius * (TEMPLATE_SIZE / 2) / TEMPLATE_RADIUS * math.sqrt(2) + 2
    x0, y0 = max(int(center[0] - extent), 0), max(int(center[1] - extent), 0)
    x1, y1 = min(int(center[0] + extent) + 1, width), min(int(center[1] + extent) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    k = radius / TEMPLATE_RADIUS
    c, s = k * math.cos(angle), k * math.sin(angle)
    half = TEMPLATE_SIZE / 2
    matrix = np.array([[c, -s, center[0] - x0 - (c * half - s * half)],
                       [s, c, center[1] - y0 - (s * half + c * half)]])
    size = (x1 - x0, y1 - y0)
    texture = cv2.warpAffine(obj.texture, matrix, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(obj.alpha, matrix, size, flags=cv2.INTER_LINEAR)
    return (x0, y0), texture, alpha


def _render_frame(objects: list[_Object], t: int, background: np.ndarray, camera_shift: np.ndarray,
                  light: tuple[np.ndarray, float, float], noise: np.ndarray
                  ) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Compose one frame back to front; return RGB uint8 and each object's visible mask or None."""
    height, width = background.shape[:2]
    frame = background.astype(np.float32)
    coverage = np.zeros((len(objects), height, width), bool)
    shadow = np.zeros((height, width), np.float32)
    layers = []
    for i, obj in enumerate(objects):
        traj = obj.trajectory
        warped = _warp(obj, traj.center(t, camera_shift), traj.angle(t), traj.radius(t), width, height)
        layers.append(warped)
        if warped is not None:
            (x0, y0), _, alpha = warped
            h, w = alpha.shape
            coverage[i, y0:y0 + h, x0:x0 + w] = alpha >= 128
            np.maximum(shadow[y0:y0 + h, x0:x0 + w], alpha, out=shadow[y0:y0 + h, x0:x0 + w])
    # A soft drop shadow cast on the background only; one blur for all objects keeps it cheap.
    offset, shadow_strength, gain = light
    shadow = cv2.warpAffine(shadow, np.array([[1, 0, offset[0]], [0, 1, offset[1]]]), (width, height))
    blur = 2 * int(min(width, height) / 60) + 1
    shadow = cv2.GaussianBlur(shadow, (blur, blur), 0) / 255.0
    frame *= (1 - shadow_strength * shadow)[..., None]
    for warped in layers:
        if warped is None:
            continue
        (x0, y0), texture, alpha = warped
        h, w = alpha.shape
        a = (alpha.astype(np.float32) / 255.0)[..., None]
        region = frame[y0:y0 + h, x0:x0 + w]
        region *= 1 - a
        region += texture.astype(np.float32) * a
    frame = frame * gain + noise
    visible: list[np.ndarray | None] = []
    hidden = np.zeros((height, width), bool)
    for i in range(len(objects) - 1, -1, -1):  # front to back: what is in front hides what is behind
        mask = coverage[i] & ~hidden
        hidden |= coverage[i]
        visible.append(mask if mask.any() else None)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8), visible[::-1]


def generate_video(seed: int, index: int, frames: int, width: int, height: int) -> SynthVideo:
    """Render video ``index`` of ``seed``: a pure function of its arguments."""
    if frames < 1 or width < 16 or height < 16:
        raise ValueError(f"need frames >= 1 and width, height >= 16; got {frames}, {width}x{height}")
    rng = np.random.default_rng([seed, index])
    strip = make_background_strip(rng, width, height)
    origin, shift = _camera_path(rng, frames, strip, width, height)
    count = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.08, 0.17, 0.22, 0.22, 0.18, 0.13]))
    categories, appearance = _sample_categories(rng, count)
    objects: list[_Object] = []
    for category_id, appearance_seed in zip(categories, appearance):
        texture, alpha = make_object_template(CATEGORIES[category_id - 1],
                                              np.random.default_rng(appearance_seed))
        trajectory = _sample_trajectory(rng, [o.trajectory for o in objects], frames, width, height,
                                        shift)
        objects.append(_Object(category_id, texture, alpha, trajectory))
    order = rng.permutation(count)  # z-order independent of who crosses whom
    objects = [objects[i] for i in order]
    light_angle = rng.uniform(0, 2 * np.pi)
    offset = min(width, height) * 0.02 * np.array([math.cos(light_angle), math.sin(light_angle)])
    shadow_strength = rng.uniform(0.2, 0.5)
    noise_sigma = rng.uniform(0.0, 4.0)
    flicker = (rng.uniform(0, 0.08), rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi))
    rendered, masks = [], [[] for _ in objects]
    for t in range(frames):
        x, y = (int(round(v)) for v in origin[t])
        background = strip[y:y + height, x:x + width]
        gain = 1 + flicker[0] * math.sin(flicker[1] * t + flicker[2])
        noise = rng.normal(0, noise_sigma, size=(height, width, 1)).astype(np.float32)
        frame, visible = _render_frame(objects, t, background, shift[t],
                                       (offset, shadow_strength, gain), noise)
        rendered.append(frame)
        for per_object, mask in zip(masks, visible):
            per_object.append(mask)
    keep = [i for i, m in enumerate(masks) if any(x is not None for x in m)]
    return SynthVideo(rendered, [objects[i].category_id for i in keep], [masks[i] for i in keep])


def _encode_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _annotation(ann_id: int, video_id: int, category_id: int, masks: list[np.ndarray | None],
                width: int, height: int) -> dict:
    segmentations, areas, bboxes = [], [], []
    for mask in masks:
        if mask is None:
            segmentations.append(None)
            areas.append(None)
            bboxes.append(None)
            continue
        rle = _encode_rle(mask)
        segmentations.append(rle)
        areas.append(int(mask.sum()))
        bboxes.append([float(v) for v in mask_bbox(mask)])
    return {"id": ann_id, "video_id": video_id, "category_id": category_id, "iscrowd": 0,
            "width": width, "height": height, "length": 1, "segmentations": segmentations,
            "areas": areas, "bboxes": bboxes}


def write_dataset(out: Path, videos: int, frames: int, width: int, height: int, seed: int,
                  progress: bool = True) -> Path:
    """Render ``videos`` clips into a YouTube-VIS dataset at ``out``; return the annotations path."""
    out = Path(out)
    image_root = out / "JPEGImages"
    image_root.mkdir(parents=True, exist_ok=True)
    dataset: dict = {
        "info": {"description": "mobileinst-synth synthetic videos", "seed": seed, "videos": videos,
                 "frames": frames, "width": width, "height": height},
        "licenses": [],
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CATEGORIES)],
        "videos": [],
        "annotations": [],
    }
    params = [int(cv2.IMWRITE_JPEG_QUALITY), JPEG_QUALITY]
    for index in tqdm(range(videos), desc="videos", unit="video", disable=not progress):
        video = generate_video(seed, index, frames, width, height)
        name = video_name(seed, index)
        (image_root / name).mkdir(exist_ok=True)
        file_names = []
        for t, frame in enumerate(video.frames):
            file_name = f"{name}/{t:05d}.jpg"
            if not cv2.imwrite(str(image_root / file_name), frame[..., ::-1], params):
                raise OSError(f"could not write {image_root / file_name}")
            file_names.append(file_name)
        video_id = index + 1
        dataset["videos"].append({"id": video_id, "name": name, "width": width, "height": height,
                                  "length": frames, "file_names": file_names})
        for category_id, masks in zip(video.category_ids, video.masks):
            ann_id = len(dataset["annotations"]) + 1
            dataset["annotations"].append(_annotation(ann_id, video_id, category_id, masks, width, height))
    path = out / "annotations.json"
    path.write_text(json.dumps(dataset))
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobileinst-synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset directory to create")
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=12, help="frames per video")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0, help="use different seeds for train and test")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace JPEGImages/ and annotations.json if --out already holds a dataset")
    parser.add_argument("--bag", type=Path, help="also write the videos and ground truth to this new rosbag2")
    parser.add_argument("--bag-storage", choices=("sqlite3", "mcap"), default="sqlite3")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the bag's stamps")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_args(args: argparse.Namespace) -> str | None:
    if args.videos < 1 or args.frames < 1:
        return f"--videos and --frames must be >= 1 (got {args.videos}, {args.frames})"
    if args.width < 32 or args.height < 32:
        return f"--width and --height must be >= 32 pixels (got {args.width}x{args.height})"
    if args.seed < 0:
        return f"--seed must be >= 0 (got {args.seed})"
    if args.fps <= 0:
        return f"--fps must be positive (got {args.fps})"
    if args.bag is not None and args.bag.exists():
        return f"{args.bag} already exists; a bag is written to a new path"
    existing = [p for p in (args.out / "JPEGImages", args.out / "annotations.json") if p.exists()]
    if existing and not args.overwrite:
        return f"{existing[0]} already exists; pass --overwrite or choose another --out"
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problem = _check_args(args)
    if problem:
        print(f"mobileinst-synth: error: {problem}", file=sys.stderr)
        return 2
    if args.overwrite:
        shutil.rmtree(args.out / "JPEGImages", ignore_errors=True)
        (args.out / "annotations.json").unlink(missing_ok=True)
    try:
        path = write_dataset(args.out, args.videos, args.frames, args.width, args.height, args.seed,
                             progress=not args.quiet)
        print(f"wrote {args.videos} videos x {args.frames} frames to {path.parent}")
        if args.bag is not None:
            frames = write_dataset_bag(args.out, args.bag, args.fps, args.bag_storage, progress=not args.quiet)
            print(f"wrote {frames} frames at {args.fps:g} Hz with ground truth to {args.bag}")
    except (OSError, BagError) as error:
        print(f"mobileinst-synth: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
