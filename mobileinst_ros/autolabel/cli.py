"""``mobileinst-autolabel``: unlabelled video + a teacher -> a YouTube-VIS dataset ``mobileinst-train`` reads.

Subcommands:
  label         teacher boxes -> tracks -> GrabCut masks, from rosbag2 image topics, videos or image folders
  paste         copy-paste augmentation: labelled objects pasted, moving, into other labelled scenes
  merge         several YouTube-VIS datasets into one (classes matched by name)
  mask-quality  box-seeded masks against exact ground truth (e.g. mobileinst-synth videos): mean IoU

Every output is written to a temporary directory beside it and renamed when complete. Errors name the
input and what is wrong, and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import cv2

from mobileinst_ros.autolabel.copy_paste import PasteOptions, paste_videos
from mobileinst_ros.autolabel.label import LabelOptions, LabelStats, label_source
from mobileinst_ros.autolabel.quality import measure_mask_quality
from mobileinst_ros.autolabel.sources import SourceError, open_frames
from mobileinst_ros.autolabel.teacher import TeacherError, load_teacher
from mobileinst_ros.autolabel.tracks import TrackOptions
from mobileinst_ros.autolabel.writer import DatasetWriter, OutputExistsError
from mobileinst_ros.data.ytvis import DatasetError, load_ytvis, read_json

__all__ = ["main"]

DEFAULT_TEACHER = "config/teachers/oid_ssd_mobilenetv2.yaml"
DEFAULT_TEACHER_DIR = "data_cache/teachers"
DEFAULT_CACHE = "data_cache/autolabel_cache"


def _classes(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobileinst-autolabel", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    label = sub.add_parser("label", help="label rosbags, videos or image folders with a teacher")
    label.add_argument("--input", required=True, nargs="+", help="rosbag2 dirs/files, videos or image folders")
    label.add_argument("--out", required=True, help="output YouTube-VIS dataset directory")
    label.add_argument("--teacher", default=DEFAULT_TEACHER, help="teacher spec YAML (default: %(default)s)")
    label.add_argument("--teacher-dir", default=DEFAULT_TEACHER_DIR,
                       help="where teacher files are: <dir>/<name>/<file> (default: %(default)s)")
    label.add_argument("--topic", help="image topic of rosbag inputs (sensor_msgs/Image or CompressedImage)")
    label.add_argument("--start", type=int, default=0, help="first frame of each input")
    label.add_argument("--step", type=int, default=1, help="take every STEP-th frame")
    label.add_argument("--max-frames", type=int, help="at most this many frames of each input")
    label.add_argument("--width", type=int, help="output frame width (default: the input's)")
    label.add_argument("--height", type=int, help="output frame height (default: keep the aspect ratio)")
    label.add_argument("--classes", help="comma-separated training classes to keep (default: all the teacher maps)")
    label.add_argument("--clip-length", type=int, default=0, help="cut inputs into videos of this many frames")
    label.add_argument("--scene-cut", type=float, default=0.0,
                       help="start a new video where the mean grey level changes more than this (0-255; 0: off)")
    label.add_argument("--stills", action="store_true",
                       help="each image of a folder is its own one-frame video (tracks of length 1 kept)")
    label.add_argument("--iou", type=float, default=TrackOptions.iou_threshold, help="least IoU to link boxes")
    label.add_argument("--max-gap", type=int, default=TrackOptions.max_gap, help="frames a track may miss")
    label.add_argument("--min-length", type=int, default=TrackOptions.min_length,
                       help="least detected frames of a kept track")
    label.add_argument("--min-mean-score", type=float, default=TrackOptions.min_mean_score,
                       help="least mean teacher score of a kept track")
    label.add_argument("--min-score", type=float, default=TrackOptions.min_score,
                       help="least teacher score of a linked detection")
    label.add_argument("--max-side", type=int, default=LabelOptions.max_side, help="GrabCut crop size in pixels")
    label.add_argument("--cache", default=DEFAULT_CACHE, help="teacher/mask cache directory (default: %(default)s)")
    label.add_argument("--licence", default="unknown", help="licence of the input footage (recorded in info)")
    label.add_argument("--threads", type=int, default=1, help="onnxruntime threads of the teacher")

    paste = sub.add_parser("paste", help="copy-paste augmentation")
    paste.add_argument("--objects", required=True, nargs="+", help="labelled datasets to cut objects from")
    paste.add_argument("--backgrounds", required=True, nargs="+", help="labelled datasets used as scenes")
    paste.add_argument("--out", required=True)
    paste.add_argument("--classes", help="comma-separated classes to paste and keep (default: the objects')")
    for name, default in (("videos", 100), ("frames", 12), ("width", 384), ("height", 288)):
        paste.add_argument(f"--{name}", type=int, default=default, help=f"default: {default}")
    paste.add_argument("--objects-per-video", default="1-4", help="MIN-MAX pasted objects (default: %(default)s)")
    paste.add_argument("--object-scale", default=f"{PasteOptions.scale_min:g}-{PasteOptions.scale_max:g}",
                       help="MIN-MAX longer side of a pasted object as a fraction of the frame's height; "
                            "match the sizes your camera sees (default: %(default)s)")
    paste.add_argument("--min-object-area", type=int, default=PasteOptions.min_object_area,
                       help="least mask pixels of a cut-out (default: %(default)s)")

    merge = sub.add_parser("merge", help="merge YouTube-VIS datasets (classes by name)")
    merge.add_argument("--out", required=True)
    merge.add_argument("--classes", help="comma-separated classes to keep, in this order (default: all)")
    merge.add_argument("inputs", nargs="+")

    quality = sub.add_parser("mask-quality", help="GrabCut masks from ground-truth boxes vs ground truth")
    quality.add_argument("--dataset", required=True, help="YouTube-VIS dataset with exact masks")
    quality.add_argument("--max-side", type=int, default=LabelOptions.max_side)
    quality.add_argument("--max-objects", type=int, help="stop after this many objects")
    quality.add_argument("--json", help="write the figures to this JSON file")

    for p in (label, paste, merge):
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    for p in (label, paste):
        p.add_argument("--seed", type=int, default=0, help="seed (GrabCut initialisation, copy-paste draws)")
    for p in (label, paste, merge, quality):
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _info(description: str, **extra: object) -> dict:
    return {"description": description, "created_by": "mobileinst-autolabel",
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), **extra}


def _label(args: argparse.Namespace) -> dict:
    teacher = load_teacher(args.teacher, args.teacher_dir, args.threads)
    classes = _classes(args.classes)
    unknown = [c for c in classes or [] if c not in teacher.training_classes]
    if unknown:
        raise TeacherError(f"{args.teacher}: --classes {unknown} are not classes this teacher labels "
                           f"({', '.join(teacher.training_classes)})")
    sources = [open_frames(p, args.topic, args.start, args.step, args.max_frames) for p in args.input]
    if args.stills:
        sources = [open_frames(image) for s in sources for image in (s.image_paths or [s.path])]
    names = Counter(s.name for s in sources)
    if any(n > 1 for n in names.values()):
        raise SourceError(f"inputs with the same name would share a video name: {[n for n, c in names.items() if c > 1]}")
    options = LabelOptions(width=args.width, height=args.height, classes=tuple(classes) if classes else None,
                           track=TrackOptions(args.iou, args.max_gap, 1 if args.stills else args.min_length,
                                              args.min_mean_score, args.min_score),
                           max_side=args.max_side, clip_length=args.clip_length, scene_cut=args.scene_cut,
                           seed=args.seed)
    spec = teacher.spec
    info = _info("mobileinst-autolabel: teacher boxes, IoU/Hungarian tracks, box-seeded masks",
                 teacher={"name": spec.name, "licence": spec.licence, "source": spec.source,
                          "hash": teacher.hash},
                 inputs=[str(s.path) for s in sources], footage_licence=args.licence,
                 options={"start": args.start, "step": args.step, "max_frames": args.max_frames,
                          "track": vars(options.track), "max_side": args.max_side, "seed": args.seed,
                          "clip_length": args.clip_length, "scene_cut": args.scene_cut, "stills": args.stills})
    stats = LabelStats()
    cv2.setNumThreads(1)
    start = time.perf_counter()
    with DatasetWriter(args.out, list(classes or teacher.training_classes), info, args.overwrite) as writer:
        for source in sources:
            stats.add(label_source(source, teacher, writer, Path(args.cache), options, progress=not args.quiet))
        writer.data["info"]["stats"] = _label_summary(stats, time.perf_counter() - start)
        writer.commit()
    return _label_summary(stats, time.perf_counter() - start)


def _label_summary(stats: LabelStats, seconds: float) -> dict:
    fresh = stats.frames - stats.cached_frames
    return {"videos": stats.videos, "frames": stats.frames, "tracks": dict(stats.tracks),
            "masks": dict(stats.masks), "seconds": round(seconds, 1),
            "teacher_ms_per_frame": round(1000 * stats.teacher_s / fresh, 1) if fresh else None,
            "mask_s": round(stats.mask_s, 1), "cached_frames": stats.cached_frames,
            "cached_mask_frames": stats.cached_masks}


def _methods(dataset_dir: Path) -> dict[int, list]:
    path = dataset_dir / "annotations.json" if dataset_dir.is_dir() else dataset_dir
    data = read_json(path)
    return {a["id"]: a.get("mask_methods") or [] for a in data.get("annotations") or []}


def _min_max(text: str, flag: str, kind: type) -> tuple:
    """'MIN-MAX' -> (MIN, MAX) of ``kind``, MIN <= MAX; a clear error naming ``flag`` otherwise."""
    try:
        low, high = (kind(v) for v in text.split("-"))
    except ValueError:
        raise ValueError(f"{flag} must be MIN-MAX, got {text!r}") from None
    if not 0 <= low <= high:
        raise ValueError(f"{flag} must be MIN-MAX with 0 <= MIN <= MAX, got {text!r}")
    return low, high


def _paste(args: argparse.Namespace) -> dict:
    low, high = _min_max(args.objects_per_video, "--objects-per-video", int)
    scale_min, scale_max = _min_max(args.object_scale, "--object-scale", float)
    objects = [load_ytvis(p, preload=False) for p in args.objects]
    backgrounds = [load_ytvis(p, require_annotations=False, preload=False) for p in args.backgrounds]
    classes = _classes(args.classes) or list(dict.fromkeys(c for d in objects for c in d.classes))
    options = PasteOptions(videos=args.videos, frames=args.frames, width=args.width, height=args.height,
                           objects_min=low, objects_max=high, min_object_area=args.min_object_area,
                           scale_min=scale_min, scale_max=scale_max, seed=args.seed)
    info = _info("mobileinst-autolabel paste: copy-paste augmentation (pasted masks exact)",
                 objects=[str(p) for p in args.objects], backgrounds=[str(p) for p in args.backgrounds],
                 options=vars(options),
                 sources={str(p): read_json(Path(p) / "annotations.json").get("info", {}) for p in
                          dict.fromkeys(args.objects + args.backgrounds)})
    with DatasetWriter(args.out, classes, info, args.overwrite) as writer:
        stats = paste_videos(objects, [_methods(Path(p)) for p in args.objects], backgrounds,
                             [_methods(Path(p)) for p in args.backgrounds], writer, options,
                             progress=not args.quiet)
        writer.commit()
    return {k: dict(v) for k, v in stats.items()}


def _merge(args: argparse.Namespace) -> dict:
    datasets = [(Path(p), read_json(Path(p) / "annotations.json")) for p in args.inputs]
    classes = _classes(args.classes) or list(dict.fromkeys(
        c["name"] for _, d in datasets for c in d["categories"]))
    for path, _ in datasets:
        load_ytvis(path, require_annotations=False, preload=False)  # checks every file before copying
    info = _info("mobileinst-autolabel merge", inputs=[str(p) for p, _ in datasets],
                 sources={str(p): d.get("info", {}) for p, d in datasets})
    counts: Counter = Counter()
    with DatasetWriter(args.out, classes, info, args.overwrite) as writer:
        names = set()
        for path, data in datasets:
            by_id = {c["id"]: c["name"] for c in data["categories"]}
            video_ids = {}
            for video in data["videos"]:
                name = video.get("name") or video["file_names"][0].split("/")[0]
                if name in names:
                    raise DatasetError(f"{path}: video name {name!r} is also in an earlier input")
                names.add(name)
                (writer.partial / "JPEGImages" / name).mkdir()
                for t, file_name in enumerate(video["file_names"]):
                    shutil.copyfile(path / "JPEGImages" / file_name, writer.frame_path(name, t))
                extra = {k: v for k, v in video.items() if k not in ("id", "name", "width", "height", "length",
                                                                      "file_names")}
                video_ids[video["id"]] = writer.add_video(name, len(video["file_names"]), video["height"],
                                                          video["width"], **extra)
            for ann in data.get("annotations") or []:
                name = by_id[ann["category_id"]]
                if name not in classes:
                    continue
                ann = dict(ann, id=len(writer.data["annotations"]) + 1, video_id=video_ids[ann["video_id"]],
                           category_id=classes.index(name) + 1)
                writer.data["annotations"].append(ann)
                counts[name] += 1
        writer.commit()
    return {"videos": len(names), "tracks": dict(counts)}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A terminated run unwinds like an error, so that its temporary output directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "label":
            result = _label(args)
        elif args.command == "paste":
            result = _paste(args)
        elif args.command == "merge":
            result = _merge(args)
        else:
            result = measure_mask_quality(load_ytvis(args.dataset, preload=False), args.max_side, args.max_objects,
                                          progress=not args.quiet)
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=1))
    except (TeacherError, SourceError, DatasetError, OutputExistsError, ValueError, OSError) as error:
        print(f"mobileinst-autolabel {args.command}: error: {error}", file=sys.stderr)
        return 2
    out = getattr(args, "out", None)
    print(json.dumps(result, indent=1))
    if out:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
