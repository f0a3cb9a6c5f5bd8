"""``mobileinst-train --config config/train/<name>.yaml``: train MobileInst on frame pairs.

Progress bar (tqdm) with loss and ETA, periodic validation (``validation.py``: the robot's engine
post-processing and tracker on the torch model, ``mobileinst-eval``'s AP and more), checkpoints
(``last.pt`` every ``checkpoint_every_s``, ``best.pt`` by validation AP, ``final.pt``), resume
(``--resume auto`` continues from ``<out_dir>/last.pt``), a metrics log (``metrics.jsonl``) and a
loss plot (``loss.png``) in ``out_dir``.

Several processes or machines: launch with ``torchrun`` (``--nproc_per_node``, ``--nnodes``, ...);
DistributedDataParallel uses gloo on CPU and nccl on GPU. ``train.batch_size`` is per process.
``--processes N`` does that on this machine: N processes share the configured batch and threads, the same
global batch, and train as one process would (``train.sync_batch_norm``: BatchNorm statistics over all of them;
without it a shapes run ended 7-8 AP below its one-process control). Whether it is faster depends on the machine
(docs/training.md): 1.3-1.5x without synchronised BatchNorm on an AVX-512 2-core machine, 0.6x with it (0.96x
without) on an AVX2 one: an option, not the shipped recipes.
``build_trainer`` + ``Trainer.step`` are one step, as ``scripts/profile_train_step.py`` times it.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import torch
import torch.distributed as dist
import yaml
from torch.autograd.profiler import record_function
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data.clips import ClipPairDataset, collate_pairs
from ..data.coco import load_coco
from ..data.transforms import ClipAugment
from ..data.ytvis import DatasetError, VideoDataset, load_ytvis
from ..model.criterion import SetCriterion
from ..model.matcher import HungarianMatcher
from ..model.mobileinst import DEFAULT_MODEL_CONFIG, build_model, count_parameters, merge_config, normalize_images
from .plot import plot_metrics
from .step import TrainStep
from .sync_batch_norm import average_count, convert_batch_norms, mean_over_processes, synchronized
from .validation import validate as validate_model

__all__ = ["DEFAULT_CONFIG", "Trainer", "build_trainer", "load_config", "load_dataset", "train", "main"]

log = logging.getLogger("mobileinst-train")

DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 0,
    "out_dir": "runs/train",
    "model": DEFAULT_MODEL_CONFIG,
    "data": {
        "train": {"format": "ytvis", "json": None, "images": None},
        "val": None,  # same keys as train; no validation when null
        "crop_size": [320, 320],
        "scale_range": [0.8, 1.25],
        "flip_prob": 0.5,
        "max_gap": 3,
        "num_workers": 0,
    },
    "loss": {
        "weights": {"class": 2.0, "dice": 2.0, "mask": 5.0, "objectness": 1.0},
        "matcher": {"cost_class": 2.0, "cost_dice": 2.0, "cost_mask": 5.0},
        "focal_alpha": 0.25,
        "focal_gamma": 2.0,
        "mask_loss_stride": 4,
        "mask_points": 0,
        "objectness_negatives": False,
        "aux_weight": 1.0,
        "temporal_weight": 1.0,
        "reuse_weight": 1.0,
        "feature_reuse_prob": 0.5,
    },
    "train": {
        "steps": 1000,
        "batch_size": 4,
        "lr": 4.0e-4,
        "backbone_lr_mult": 0.5,
        "weight_decay": 0.05,
        "warmup_steps": 50,
        "min_lr_ratio": 0.05,
        "grad_clip": 1.0,
        "threads": 2,
        "precision": "fp32",
        "freeze_backbone_blocks": -1,
        "frozen_precision": "auto",
        "init_from": None,
        "precise_bn_batches": 20,
        "sync_batch_norm": False,  # --processes sets it: its processes split one batch
        "channels_last": True,
        "log_every": 10,
        "checkpoint_every_s": 300,
        "val_every": 250,
    },
    "val": {
        "input_size": [288, 384],
        "max_videos": 20,
        "keyframe_interval": 3,
        "score_threshold": 0.05,
        "max_instances": 10,
        "mask_threshold": 0.5,
        "duplicate_iou": 0.5,
        "split_components": False,
        "association_threshold": 0.5,
    },
}

_FREE_FORM = {"model", "data.train", "data.val"}  # checked by their own consumers


def _check_keys(cfg: dict, ref: dict, where: str) -> None:
    for key, value in cfg.items():
        path = f"{where}.{key}" if where else key
        if key not in ref:
            raise ValueError(f"unknown config key {path!r}")
        if isinstance(value, dict) and isinstance(ref[key], dict) and path not in _FREE_FORM \
                and not path.startswith("loss.weights"):
            _check_keys(value, ref[key], path)


def override_config(cfg: dict, assignment: str) -> dict:
    """``cfg`` with one ``dotted.key=value`` assignment (a YAML value: ``train.lr=4.0e-4``,
    ``model.backbone.skip_blocks=[2, 7]``); unknown keys are errors."""
    key, eq, text = assignment.partition("=")
    if not eq or not key:
        raise ValueError(f"config override {assignment!r}: expected key=value")
    value = yaml.safe_load(text)
    for part in reversed(key.split(".")):
        value = {part: value}
    _check_keys(value, DEFAULT_CONFIG, "")
    return merge_config(cfg, value)


def load_config(path: str | Path) -> dict:
    """YAML training config merged over DEFAULT_CONFIG; unknown keys are errors."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            user = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(user, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    try:
        _check_keys(user, DEFAULT_CONFIG, "")
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    cfg = merge_config(DEFAULT_CONFIG, user)
    if not cfg["data"]["train"].get("json"):
        raise ValueError(f"{path}: data.train.json is required")
    return cfg


def load_dataset(spec: dict, require_annotations: bool = True) -> VideoDataset:
    """{format: ytvis | coco, json: path, images: dir (coco: required; ytvis: <json dir>/JPEGImages)}."""
    fmt = spec.get("format", "ytvis")
    if fmt == "ytvis":
        return load_ytvis(spec["json"], spec.get("images"), require_annotations=require_annotations)
    if fmt == "coco":
        if not spec.get("images"):
            raise ValueError(f"data spec for {spec['json']}: format coco needs 'images' (the image directory)")
        return load_coco(spec["json"], spec["images"], require_annotations=require_annotations)
    raise ValueError(f"unknown data format {fmt!r}: expected 'ytvis' or 'coco'")


class _IndexSampler(torch.utils.data.Sampler):
    """Sample indices for steps [start, end) of this rank: disjoint across ranks and steps."""

    def __init__(self, start: int, end: int, batch: int, rank: int, world: int):
        self.start, self.end, self.batch, self.rank, self.world = start, end, batch, rank, world

    def __iter__(self):
        for step in range(self.start, self.end):
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return (self.end - self.start) * self.batch


def _lr_factor(step: int, cfg: dict) -> float:
    """Linear warm-up then cosine decay to ``min_lr_ratio``."""
    warm, total, floor = cfg["warmup_steps"], cfg["steps"], cfg["min_lr_ratio"]
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a checkpoint is never half-written, even if the job is killed


def _truncate_metrics(jsonl: Path, step: int) -> None:
    """On resume, forget records logged after the checkpoint's step (they will be logged again)."""
    if jsonl.is_file():
        lines = [line for line in jsonl.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        jsonl.write_text("".join(line + "\n" for line in lines))


def _to_device(targets: list[list[dict]], device: torch.device) -> list[list[dict]]:
    return [[{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in pair] for pair in targets]


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


@dataclass
class Trainer:
    """What one training process holds: data, model, losses, optimizer (``build_trainer``)."""

    cfg: dict
    device: torch.device
    rank: int
    world: int
    train_set: VideoDataset
    val_set: VideoDataset | None
    pairs: ClipPairDataset
    model: torch.nn.Module
    step_module: TrainStep
    runner: torch.nn.Module          # step_module, wrapped in DDP with several processes
    optimizer: torch.optim.Optimizer
    memory_format: torch.memory_format
    frozen: torch.nn.Module | None = None  # the backbone's frozen prefix (``train.freeze_backbone_blocks``)
    frozen_precision: FrozenPrecision | None = None  # ``train.frozen_precision`` bf16

    def train_mode(self) -> None:
        """model.train(), the frozen prefix excepted: its BatchNorm keeps the ImageNet statistics."""
        self.model.train()
        if self.frozen is not None:
            self.frozen.eval()

    def loader(self, start_step: int, steps: int) -> torch.utils.data.DataLoader:
        """Batches for steps [start_step, steps) of this rank. With ``data.num_workers`` > 0 they are
        made in worker processes while the main one trains (one thread each: they share the cores)."""
        dcfg, batch = self.cfg["data"], self.cfg["train"]["batch_size"]
        workers = int(dcfg["num_workers"])
        return torch.utils.data.DataLoader(
            self.pairs, batch_size=batch, sampler=_IndexSampler(start_step, steps, batch, self.rank, self.world),
            collate_fn=collate_pairs, num_workers=workers, persistent_workers=False,
            prefetch_factor=4 if workers else None, worker_init_fn=_single_thread_worker if workers else None)

    def step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch from ``loader`` -> the (detached) losses."""
        tcfg = self.cfg["train"]
        images = normalize_images(batch["images"].to(self.device)).flatten(0, 1)
        images = images.contiguous(memory_format=self.memory_format).unflatten(0, batch["images"].shape[:2])
        targets = _to_device(batch["targets"], self.device)
        for g, factor in zip(self.optimizer.param_groups, (tcfg["backbone_lr_mult"], 1.0)):
            g["lr"] = tcfg["lr"] * factor * _lr_factor(step, tcfg)
        # the same draw on every process: those that reuse run the mask decoder's BatchNorm once more
        reuse = random.Random(f"{self.cfg['seed']}:{step}").random() < self.cfg["loss"]["feature_reuse_prob"]
        with synchronized(self.model):
            with self.frozen_precision or contextlib.nullcontext():
                losses = self.runner(images, targets, reuse)
            self.optimizer.zero_grad(set_to_none=True)
            with record_function("backward"):
                losses["total"].backward()
        with record_function("optimizer"):
            if tcfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(self.trainable, tcfg["grad_clip"], foreach=True)
            self.optimizer.step()
        # the whole batch's losses for the log (each process holds its share's)
        return dict(zip(losses, mean_over_processes(torch.stack([v.detach().float() for v in losses.values()]))))

    @torch.no_grad()
    def precise_bn(self, batches: int) -> None:
        """Recompute the BatchNorm running statistics as the plain mean over ``batches`` training
        batches with the current weights (detectron2's PreciseBN). The running averages that
        training keeps lag behind fast-changing weights; eval-mode inference then sees activations
        the heads never saw (a tiny model's masks vanished entirely in eval mode). The frozen
        prefix keeps its statistics."""
        frozen = {id(m) for m in self.frozen.modules()} if self.frozen is not None else set()
        norms = [m for m in self.model.modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and id(m) not in frozen]
        if batches <= 0 or not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        self.train_mode()
        size = self.cfg["train"]["batch_size"]
        start = 10 ** 9  # a stream of clip pairs apart from the training sampler's
        for b in range(batches):
            batch = collate_pairs([self.pairs[start + b * size + i] for i in range(size)])
            images = normalize_images(batch["images"].to(self.device)).flatten(0, 1)
            self.model(images.contiguous(memory_format=self.memory_format))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    @property
    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]


def freeze_backbone_prefix(model: torch.nn.Module, blocks: int, model_cfg: dict) -> torch.nn.Module | None:
    """Freeze the pretrained backbone's stem and its first ``blocks`` blocks (no gradients, BatchNorm
    in eval mode; detectron2's FREEZE_AT): the highest-resolution layers cost the most backward
    time on a CPU and hold generic ImageNet filters. -1 freezes nothing. -> the frozen module."""
    if blocks < 0:
        return None
    backbone_cfg = {**DEFAULT_MODEL_CONFIG["backbone"], **model_cfg.get("backbone", {})}
    if backbone_cfg["name"] != "efficientnet_lite0" or not backbone_cfg.get("pretrained") \
            or backbone_cfg.get("stem", "efficientnet") != "efficientnet":
        raise ValueError("train.freeze_backbone_blocks freezes pretrained weights: it needs model.backbone "
                         "efficientnet_lite0 with pretrained: true and its own stem (set it to -1 otherwise)")
    stage3 = model.backbone.stage3
    if blocks > len(stage3):
        raise ValueError(f"train.freeze_backbone_blocks: {blocks} > the {len(stage3)} blocks before stride 8")
    prefix = torch.nn.Sequential(model.backbone.stem, *list(stage3)[:blocks])
    for p in prefix.parameters():
        p.requires_grad_(False)
    return prefix


def init_from_checkpoint(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Fine-tuning: load the weights of another run's checkpoint (not its optimizer, step or schedule).
    Tensors whose shape differs (the class head of a model with other classes) keep their
    initialisation. -> the names of the tensors not loaded."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"train.init_from: {path}: checkpoint not found")
    source = torch.load(path, map_location="cpu", weights_only=True)["model"]
    own = model.state_dict()
    loaded = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if len(loaded) < len(own) // 2:
        raise ValueError(f"train.init_from: {path}: only {len(loaded)} of the model's {len(own)} tensors match "
                         "in name and shape: it is another architecture (compare its config's model section)")
    model.load_state_dict(loaded, strict=False)
    return sorted(set(own) - set(loaded))


class FrozenPrecision:
    """The frozen prefix's forward in ``dtype`` (autocast) inside ``with`` blocks (training steps),
    float32 elsewhere (validation, PreciseBN, export). With no backward to run, the prefix gets
    bfloat16's faster forward without the slow bfloat16 backward of depthwise convolutions that rules
    out ``train.precision: bf16`` on a CPU (docs/training.md)."""

    def __init__(self, prefix: torch.nn.Sequential, dtype: torch.dtype):
        self.dtype, self.active = dtype, False
        for k, module in enumerate(prefix):  # an instance attribute: the state dict is unchanged
            module.forward = self._wrap(module.forward, last=k == len(prefix) - 1)

    def _wrap(self, forward: Any, last: bool) -> Any:
        def run(x: torch.Tensor) -> torch.Tensor:
            if not self.active:
                return forward(x)
            with torch.autocast(x.device.type, dtype=self.dtype):
                y = forward(x)
            # inside the prefix the activations stay in bf16; the first trained block gets float32
            return y.float() if last else y
        return run

    def __enter__(self) -> None:
        self.active = True

    def __exit__(self, *_: object) -> None:
        self.active = False


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def build_trainer(cfg: dict, rank: int = 0, world: int = 1, local_rank: int = 0) -> Trainer:
    """Datasets, model, criterion and optimizer as ``cfg`` says (no checkpoint loaded)."""
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    tcfg, lcfg, dcfg = cfg["train"], cfg["loss"], cfg["data"]
    torch.set_num_threads(int(tcfg["threads"]))
    torch.set_flush_denormal(True)  # denormal optimizer states / activations slow CPU math many-fold
    torch.manual_seed(cfg["seed"] + rank)
    train_set = load_dataset(dcfg["train"])
    val_set = load_dataset(dcfg["val"]) if dcfg.get("val") and rank == 0 else None
    if val_set is not None and val_set.classes != train_set.classes:
        raise ValueError(f"{val_set.source}: classes {val_set.classes} differ from training's {train_set.classes}")
    augment = ClipAugment(tuple(dcfg["crop_size"]), tuple(dcfg["scale_range"]), dcfg["flip_prob"])
    pairs = ClipPairDataset(train_set, augment, dcfg["max_gap"], seed=cfg["seed"])

    model = build_model(cfg["model"], len(train_set.classes)).to(device)
    if world > 1 and tcfg["sync_batch_norm"]:  # BatchNorm over the whole batch, not each process's share
        model = convert_batch_norms(model)
    memory_format = torch.channels_last if tcfg["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    matcher = HungarianMatcher(**lcfg["matcher"], focal_alpha=lcfg["focal_alpha"], focal_gamma=lcfg["focal_gamma"])
    criterion = SetCriterion(matcher, lcfg["weights"], lcfg["focal_alpha"], lcfg["focal_gamma"],
                             lcfg["mask_loss_stride"], lcfg["mask_points"], lcfg["objectness_negatives"],
                             average_count=average_count)
    step_module = TrainStep(model, criterion, lcfg["aux_weight"], lcfg["temporal_weight"], lcfg["reuse_weight"],
                            autocast_dtype=_autocast_dtype(tcfg["precision"]))
    frozen = freeze_backbone_prefix(model, int(tcfg["freeze_backbone_blocks"]), cfg["model"])
    frozen_dtype = _autocast_dtype(_frozen_precision(tcfg["frozen_precision"], device, frozen is not None))
    if rank == 0 and frozen is not None:
        log.info("frozen prefix in %s", "bf16" if frozen_dtype is not None else "fp32")
    if frozen_dtype is not None and frozen is None:
        raise ValueError("train.frozen_precision: bf16 needs a frozen prefix (train.freeze_backbone_blocks >= 0)")
    frozen_precision = FrozenPrecision(frozen, frozen_dtype) if frozen_dtype is not None else None
    runner = DistributedDataParallel(step_module, device_ids=[local_rank] if device.type == "cuda" else None) \
        if world > 1 else step_module

    backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    head_params = [p for p in model.parameters() if id(p) not in backbone_ids]
    # fused: one kernel for all parameters (the per-tensor loop took ~0.1 s a step on 2 cores)
    optimizer = torch.optim.AdamW([
        {"params": backbone_params, "lr": tcfg["lr"] * tcfg["backbone_lr_mult"]},
        {"params": head_params, "lr": tcfg["lr"]},
    ], weight_decay=tcfg["weight_decay"], fused=True)
    return Trainer(cfg, device, rank, world, train_set, val_set, pairs, model, step_module, runner, optimizer,
                   memory_format, frozen, frozen_precision)


def _frozen_precision(setting: str, device: torch.device, has_prefix: bool) -> str:
    """``train.frozen_precision`` resolved: ``auto`` is bf16 on a CPU with bf16 instructions (AVX512-BF16 or AMX),
    where it saves ~17% of a step, and fp32 elsewhere: an AVX2 CPU emulates bf16 and a step took 2.2x longer
    (docs/training.md)."""
    if setting not in ("auto", "fp32", "bf16"):
        raise ValueError(f"train.frozen_precision must be auto, fp32 or bf16, got {setting!r}")
    if setting != "auto":
        return setting
    native = device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return "bf16" if native and has_prefix else "fp32"


def _autocast_dtype(precision: str) -> torch.dtype | None:
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"train.precision must be fp32 or bf16, got {precision!r}")
    return torch.bfloat16 if precision == "bf16" else None


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(cfg: dict, resume: str = "auto") -> tuple[torch.nn.Module, dict]:
    """Run training as configured -> (the trained model, the last validation metrics or {})."""
    rank, world, local_rank = _distributed()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    tcfg, vcfg = cfg["train"], cfg["val"]
    out_dir = Path(cfg["out_dir"])
    is_main = rank == 0
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    trainer = build_trainer(cfg, rank, world, local_rank)
    model, optimizer, train_set, val_set = trainer.model, trainer.optimizer, trainer.train_set, trainer.val_set

    start_step, best_ap = 0, -1.0
    last_val = (-1, -1.0)  # the step and AP of the last validation
    resume_path = out_dir / "last.pt" if resume == "auto" else (None if resume == "none" else Path(resume))
    if resume_path is not None and resume_path.is_file():
        state = torch.load(resume_path, map_location=trainer.device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, best_ap = int(state["step"]), float(state.get("best_ap", -1.0))
        if is_main:
            _truncate_metrics(out_dir / "metrics.jsonl", start_step)
            log.info("resumed from %s at step %d", resume_path, start_step)
    elif resume not in ("auto", "none"):
        raise ValueError(f"--resume {resume}: checkpoint not found")
    elif tcfg["init_from"]:
        skipped = init_from_checkpoint(model, tcfg["init_from"])
        if is_main:
            log.info("weights from %s (step 0 of a new schedule); kept their initialisation: %s",
                     tcfg["init_from"], ", ".join(skipped) or "none")

    steps = int(tcfg["steps"])
    loader = trainer.loader(start_step, steps)
    meta = {"config": cfg, "classes": train_set.classes, "category_ids": train_set.category_ids}
    if is_main:
        log.info("model parameters: %s", count_parameters(model))
        log.info("train: %d videos, %d frames, %d tracks; %d steps of %d clip pairs x %d processes",
                 len(train_set.videos), train_set.num_frames, train_set.num_annotations, steps,
                 tcfg["batch_size"], world)

    def checkpoint(step: int, name: str, full: bool) -> None:
        state = {"model": model.state_dict(), "step": step, "best_ap": best_ap, **meta}
        if last_val[0] == step:  # validated with these very weights
            state["val_ap"] = last_val[1]
        if full:
            state["optimizer"] = optimizer.state_dict()
        _save(state, out_dir / name)

    def validate(step: int) -> dict:
        nonlocal best_ap, last_val
        # the other processes wait for this one at their next step: on a CPU it may use their threads too
        threads = int(tcfg["threads"]) * (world if trainer.device.type == "cpu" else 1)
        with _torch_threads(threads):
            trainer.precise_bn(int(tcfg["precise_bn_batches"]))
            metrics = validate_model(model, val_set, vcfg)
        trainer.train_mode()
        last_val = (step, metrics["AP"])
        with open(out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"type": "val", "step": step, "time": time.time(), **metrics}) + "\n")
        if metrics["AP"] > best_ap:
            best_ap = metrics["AP"]
            checkpoint(step, "best.pt", full=False)
        plot_metrics(out_dir / "metrics.jsonl", out_dir / "loss.png")
        return metrics

    trainer.train_mode()
    # redirected to a log file, refresh rarely: every refresh appends a carriage-return line
    bar = tqdm(total=steps, initial=start_step, disable=not is_main, dynamic_ncols=True,
               mininterval=2.0 if sys.stderr.isatty() else 60.0, desc="train")
    window: dict[str, float] = {}
    window_instances, window_steps, window_time = 0, 0, 0.0
    last_ckpt, metrics, step = time.time(), {}, start_step
    tic = time.perf_counter()
    for step, batch in enumerate(loader, start=start_step):
        losses = trainer.step(batch, step)
        window_time += time.perf_counter() - tic  # the whole step, waiting for data included
        for k, v in losses.items():
            window[k] = window.get(k, 0.0) + float(v)
        window_instances += sum(int(t["labels"].numel()) for pair in batch["targets"] for t in pair)
        window_steps += 1
        bar.update(1)
        bar.set_postfix(loss=f"{window['total'] / window_steps:.3f}", lr=f"{optimizer.param_groups[1]['lr']:.2e}",
                        refresh=False)  # else every step writes a line to a log file

        done = step + 1
        if done % tcfg["log_every"] == 0 or done == steps:
            if window_instances == 0:
                raise RuntimeError(f"no annotated instance in the last {window_steps} batches: the crops "
                                   "(data.crop_size, data.scale_range) leave nothing to learn from")
            if is_main:
                record = {"type": "train", "step": done, "time": time.time(),
                          "lr": optimizer.param_groups[1]["lr"],
                          "s_per_step": window_time / window_steps,
                          **{k: v / window_steps for k, v in window.items()}}
                with open(out_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
            window, window_instances, window_steps, window_time = {}, 0, 0, 0.0
        if val_set is not None and (done % tcfg["val_every"] == 0 or done == steps):
            metrics = validate(done)
            bar.write(f"step {done}: val AP {metrics['AP']:.3f} AP50 {metrics['AP50']:.3f}")
        if is_main and (time.time() - last_ckpt >= tcfg["checkpoint_every_s"] or done == steps):
            checkpoint(done, "last.pt", full=True)
            plot_metrics(out_dir / "metrics.jsonl", out_dir / "loss.png")
            last_ckpt = time.time()
        tic = time.perf_counter()
    bar.close()
    if is_main:
        if val_set is None:  # else the last validation did it, with these weights
            trainer.precise_bn(int(tcfg["precise_bn_batches"]))
        checkpoint(steps, "final.pt", full=False)
        plot_metrics(out_dir / "metrics.jsonl", out_dir / "loss.png")
    if world > 1:
        # DDP's Reducer holds the process group. Freed after destroy_process_group, it would free the group itself,
        # with the GIL held, waiting for gloo's threads, one of which may need the GIL to free a finished
        # all_reduce's tensors: a deadlock seen once in test_ddp. Freed first, it only drops a reference.
        trainer.runner = trainer.step_module
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return model, metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobileinst-train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="training YAML (see config/train/)")
    parser.add_argument("--out-dir", type=Path, help="override the config's out_dir")
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--init-from", type=Path,
                        help="start from this checkpoint's weights (fine-tuning: new schedule, optimizer and best.pt; "
                             "overrides train.init_from)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=4.0e-4 (YAML value; repeatable)")
    parser.add_argument("--resume", default="auto",
                        help="'auto' (continue from <out_dir>/last.pt if present), 'none', or a checkpoint path")
    parser.add_argument("--processes", type=int, default=1,
                        help="data-parallel processes on this machine (torchrun): they share train.batch_size and "
                             "train.threads, so the global batch stays the configured one")
    return parser


def _config_from_args(args: argparse.Namespace) -> dict:
    cfg = load_config(args.config)
    for assignment in args.set:
        cfg = override_config(cfg, assignment)
    if args.out_dir is not None:
        cfg["out_dir"] = str(args.out_dir)
    if args.steps is not None:
        cfg["train"]["steps"] = args.steps
    if args.init_from is not None:
        cfg["train"]["init_from"] = str(args.init_from)
    return cfg


def _launch_processes(argv: list[str], cfg: dict, processes: int) -> int:
    """Run this command again in ``processes`` local processes under torchrun, each with its share of the
    configured batch and threads; returns the launcher's exit status."""
    from torch.distributed.run import main as torchrun

    batch, threads = int(cfg["train"]["batch_size"]), max(1, int(cfg["train"]["threads"]) // processes)
    if batch % processes:
        raise ValueError(f"--processes {processes} must divide train.batch_size {batch} (the global batch)")
    share = [f"--set=train.batch_size={batch // processes}", f"--set=train.threads={threads}",
             "--set=train.sync_batch_norm=true"]
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        torchrun(["--standalone", f"--nproc_per_node={processes}", "-m", "mobileinst_ros.training.train",
                  *argv, *share])
    except Exception as err:  # the launcher raises ChildFailedError with the worker's traceback, logged already
        print(f"mobileinst-train: error: a training process failed: {type(err).__name__}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        if args.processes < 1:
            raise ValueError(f"--processes must be >= 1, got {args.processes}")
        cfg = _config_from_args(args)
        if args.processes > 1 and "WORLD_SIZE" not in os.environ:
            return _launch_processes(argv, cfg, args.processes)  # each process sees WORLD_SIZE and trains
        train(cfg, resume=args.resume)
    except (DatasetError, ValueError, OSError) as e:
        print(f"mobileinst-train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mobileinst-train: interrupted; resume with --resume auto", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
