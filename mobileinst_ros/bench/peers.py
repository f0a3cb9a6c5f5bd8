"""Peer heads for the latency benchmark, on the SAME backbone features (x3, x4, x5) and input as MobileInst.

- ``SparseInstHead``: SparseInst's instance context encoder (FPN + pyramid pooling, 256 channels, fused
  at stride 8) and its decoder: an instance branch and a mask branch of 4 3x3 convs (256 ch, coordinate
  features) at stride 8, instance activation maps (IAM, 100 queries) pooling instance features, heads
  for class, objectness and 128-D kernels, masks = kernels x mask features.
- ``YolactHead``: YOLACT's FPN (P3..P7, 256 ch), protonet on P3 (3 3x3 convs, x2 upsampling, 32
  prototypes at stride 4), a shared prediction head (3 anchors per location: classes, boxes, 32
  coefficients); numpy post-processing with FastNMS and mask assembly (``yolact_postprocess``).

Random weights: only latency is measured. Torch modules here are exported to ONNX by the benchmark in
a child process; ``yolact_priors``, ``yolact_postprocess`` and ``sparseinst_postprocess`` are numpy.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np

from mobileinst_ros.runtime.postprocess import mask_logits, mask_stats, masks_to_image, query_scores, rank
from mobileinst_ros.runtime.preprocess import Geometry

__all__ = ["export_peers", "sparseinst_postprocess", "yolact_priors", "yolact_postprocess", "YOLACT_LEVELS"]

YOLACT_LEVELS = (8, 16, 32, 64, 128)      # strides of P3..P7
YOLACT_ASPECTS = (1.0, 0.5, 2.0)
YOLACT_SCALES = (24, 48, 96, 192, 384)    # anchor size per level, as YOLACT's


def _torch_modules():
    """The peer heads as torch modules (imported lazily: the benchmark itself stays torch-free)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def conv(cin: int, cout: int, k: int = 3, stride: int = 1, relu: bool = True) -> nn.Module:
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2)]
        return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else layers[0]

    def up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    def coords(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(x.shape[0], 1, h, w)
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(x.shape[0], 1, h, w)
        return torch.cat([x, xs, ys], dim=1)

    class SparseInstHead(nn.Module):
        def __init__(self, in_ch: tuple[int, int, int], num_classes: int, dim: int = 256,
                     queries: int = 100, kernel_dim: int = 128, convs: int = 4):
            super().__init__()
            self.lateral = nn.ModuleList(conv(c, dim, 1, relu=False) for c in in_ch)
            self.output = nn.ModuleList(conv(dim, dim) for _ in in_ch)
            self.ppm = nn.ModuleList(conv(dim, dim // 4, 1) for _ in (1, 2, 3, 6))
            self.ppm_out = conv(dim + dim, dim, 1)
            self.fuse = conv(3 * dim, dim, 1)
            self.inst = nn.Sequential(conv(dim + 2, dim), *[conv(dim, dim) for _ in range(convs - 1)])
            self.mask = nn.Sequential(conv(dim + 2, dim), *[conv(dim, dim) for _ in range(convs - 1)])
            self.iam = nn.Conv2d(dim, queries, 3, padding=1)
            self.fc = nn.Sequential(nn.Linear(dim, 1024), nn.ReLU(inplace=True))
            self.cls = nn.Linear(1024, num_classes)
            self.obj = nn.Linear(1024, 1)
            self.kernel = nn.Linear(1024, kernel_dim)
            self.project = nn.Conv2d(dim, kernel_dim, 1)

        def _pyramid_pool(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2:]
            pooled = [up_to(branch(F.adaptive_avg_pool2d(x, 1) if size == 1 else
                                   F.avg_pool2d(x, (max(1, h // size), max(1, w // size)))), x)
                      for branch, size in zip(self.ppm, (1, 2, 3, 6))]
            return self.ppm_out(torch.cat([x, *pooled], dim=1))

        def forward(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor) -> tuple[torch.Tensor, ...]:
            l3, l4, l5 = (lat(x) for lat, x in zip(self.lateral, (x3, x4, x5)))
            p5 = self._pyramid_pool(self.output[2](l5))
            p4 = self.output[1](l4 + up_to(p5, l4))
            p3 = self.output[0](l3 + up_to(p4, l3))
            feats = self.fuse(torch.cat([p3, up_to(p4, p3), up_to(p5, p3)], dim=1))
            feats = coords(feats)
            inst = self.inst(feats)
            iam = torch.sigmoid(self.iam(inst)).flatten(2)                   # [B,N,HW]
            iam = iam / iam.sum(-1, keepdim=True).clamp(min=1e-6)
            inst_feats = self.fc(torch.bmm(iam, inst.flatten(2).transpose(1, 2)))
            return (self.cls(inst_feats), self.obj(inst_feats)[..., 0], self.kernel(inst_feats),
                    self.project(self.mask(feats)))

    class YolactHead(nn.Module):
        def __init__(self, in_ch: tuple[int, int, int], num_classes: int, dim: int = 256, protos: int = 32):
            super().__init__()
            anchors = len(YOLACT_ASPECTS)
            self.lateral = nn.ModuleList(conv(c, dim, 1, relu=False) for c in in_ch)
            self.smooth = nn.ModuleList(conv(dim, dim, relu=False) for _ in in_ch)
            self.down = nn.ModuleList(conv(dim, dim, 3, 2, relu=False) for _ in range(2))
            self.proto = nn.Sequential(conv(dim, dim), conv(dim, dim), conv(dim, dim))
            self.proto_out = nn.Sequential(conv(dim, dim), conv(dim, protos, 1))
            self.shared = conv(dim, dim)
            self.cls = conv(dim, anchors * (num_classes + 1), relu=False)
            self.box = conv(dim, anchors * 4, relu=False)
            self.coef = conv(dim, anchors * protos, relu=False)
            self.num_classes, self.protos = num_classes, protos

        def forward(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor) -> tuple[torch.Tensor, ...]:
            l3, l4, l5 = (lat(x) for lat, x in zip(self.lateral, (x3, x4, x5)))
            l4 = l4 + up_to(l5, l4)
            l3 = l3 + up_to(l4, l3)
            p3, p4, p5 = (s(x) for s, x in zip(self.smooth, (l3, l4, l5)))
            p6 = self.down[0](p5)
            p7 = self.down[1](p6)
            proto = self.proto(p3)
            proto = F.interpolate(proto, scale_factor=2.0, mode="bilinear", align_corners=False)
            proto = torch.relu(self.proto_out(proto))                          # [B,P,H/4,W/4]
            cls, box, coef = [], [], []
            for p in (p3, p4, p5, p6, p7):
                s = self.shared(p)
                b = p.shape[0]
                cls.append(self.cls(s).permute(0, 2, 3, 1).reshape(b, -1, self.num_classes + 1))
                box.append(self.box(s).permute(0, 2, 3, 1).reshape(b, -1, 4))
                coef.append(torch.tanh(self.coef(s)).permute(0, 2, 3, 1).reshape(b, -1, self.protos))
            return torch.cat(cls, 1), torch.cat(box, 1), torch.cat(coef, 1), proto

    return SparseInstHead, YolactHead


PEER_IO = {
    "sparseinst": (("x3", "x4", "x5"), ("logits", "objectness", "kernels", "mask_features")),
    "yolact": (("x3", "x4", "x5"), ("class_logits", "boxes", "coefficients", "prototypes")),
}


def export_peers(shapes: dict[str, tuple[int, ...]], num_classes: int, out_dir: str | Path,
                 seed: int = 0) -> dict[str, Path]:
    """Export both peer heads (random weights) for backbone features of ``shapes`` (x3, x4, x5 ->
    [1, C, h, w]) to ``out_dir``; returns name -> .onnx path. Imports torch."""
    import torch

    torch.manual_seed(seed)
    sparse_cls, yolact_cls = _torch_modules()
    channels = tuple(shapes[n][1] for n in ("x3", "x4", "x5"))
    heads = {"sparseinst": sparse_cls(channels, num_classes), "yolact": yolact_cls(channels, num_classes)}
    args = tuple(torch.randn(*shapes[n]) for n in ("x3", "x4", "x5"))
    out = {}
    for name, head in heads.items():
        inputs, outputs = PEER_IO[name]
        path = Path(out_dir) / f"{name}.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # fixed-size export: sizes taken as constants are intended
            torch.onnx.export(head.eval(), args, str(path), input_names=list(inputs),
                              output_names=list(outputs), opset_version=17, dynamo=False)
        out[name] = path
    return out


def sparseinst_postprocess(outputs: dict[str, np.ndarray], geometry: Geometry, score_threshold: float,
                           mask_threshold: float, max_instances: int) -> np.ndarray:
    """SparseInst's inference: score = sqrt(cls * obj), maskness rescoring, masks at the image size
    (the same numpy code as MobileInst's, so only the head differs)."""
    scores, _ = query_scores(outputs["logits"][0], outputs["objectness"][0])
    cand = np.flatnonzero(scores >= score_threshold)
    logits = mask_logits(outputs["kernels"][0][cand], outputs["mask_features"][0])
    mness, _ = mask_stats(logits, geometry, 8, mask_threshold)
    keep = rank(scores[cand] * mness, score_threshold, max_instances)
    return masks_to_image(logits[keep], geometry, 8, mask_threshold)[0]


def yolact_priors(input_size: tuple[int, int]) -> np.ndarray:
    """Anchor boxes [A, 4] (cx, cy, w, h in input pixels) in the head's output order."""
    w, h = input_size
    priors = []
    for stride, scale in zip(YOLACT_LEVELS, YOLACT_SCALES):
        gh, gw = -(-h // stride), -(-w // stride)
        for y, x in itertools.product(range(gh), range(gw)):
            for aspect in YOLACT_ASPECTS:
                r = np.sqrt(aspect)
                priors.append(((x + 0.5) * stride, (y + 0.5) * stride, scale * r, scale / r))
    return np.asarray(priors, np.float32)


def _fast_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, top_k: int) -> np.ndarray:
    """YOLACT's FastNMS for one class: boxes [K, 4] (x0, y0, x1, y1) sorted by score; keeps boxes
    whose largest IoU with a higher-scoring box is below the threshold (one matrix, no loop)."""
    order = np.argsort(-scores)[:top_k]
    b = boxes[order]
    x0 = np.maximum(b[:, None, 0], b[None, :, 0])
    y0 = np.maximum(b[:, None, 1], b[None, :, 1])
    x1 = np.minimum(b[:, None, 2], b[None, :, 2])
    y1 = np.minimum(b[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou = np.triu(inter / (area[:, None] + area[None, :] - inter + 1e-9), k=1)
    return order[iou.max(axis=0, initial=0) < iou_threshold]


def yolact_postprocess(outputs: dict[str, np.ndarray], priors: np.ndarray, geometry: Geometry,
                       max_instances: int, score_threshold: float = 0.05, nms_threshold: float = 0.5,
                       top_k: int = 200) -> np.ndarray:
    """YOLACT's inference: softmax classes, box decoding, per-class FastNMS, mask assembly from
    prototypes x coefficients, box crop, masks at the image size -> bool [K, H, W]."""
    logits = outputs["class_logits"][0]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = probs[:, 1:] / probs.sum(axis=1, keepdims=True)                  # drop background
    loc = outputs["boxes"][0]
    centre = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
    size = priors[:, 2:] * np.exp(np.clip(loc[:, 2:] * 0.2, -4, 4))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    best = probs.max(axis=1)
    cand = np.flatnonzero(best > score_threshold)
    labels = probs[cand].argmax(axis=1)
    kept, kept_scores = [], []
    for c in np.unique(labels):
        members = cand[labels == c]
        survivors = members[_fast_nms(boxes[members], best[members], nms_threshold, top_k)]
        kept.append(survivors)
        kept_scores.append(best[survivors])
    if not kept:
        return np.zeros((0, geometry.image_size[1], geometry.image_size[0]), bool)
    kept, kept_scores = np.concatenate(kept), np.concatenate(kept_scores)
    kept = kept[np.argsort(-kept_scores)][:max_instances]
    protos = outputs["prototypes"][0]                                          # [P, h, w] stride 4
    p, ph, pw = protos.shape
    logits = (outputs["coefficients"][0][kept] @ protos.reshape(p, ph * pw)).reshape(-1, ph, pw)
    # crop to the box on the prototype grid (YOLACT crops before upsampling)
    ys, xs = np.arange(ph)[None, :, None] * 4.0, np.arange(pw)[None, None, :] * 4.0
    b = boxes[kept]
    inside = ((xs >= b[:, 0, None, None]) & (xs <= b[:, 2, None, None]) &
              (ys >= b[:, 1, None, None]) & (ys <= b[:, 3, None, None]))
    logits = np.where(inside, logits, -50.0).astype(np.float32)
    return masks_to_image(logits, geometry, 4, 0.5)[0]
