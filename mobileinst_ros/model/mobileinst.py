"""MobileInst: backbone -> semantic-enhanced mask decoder -> dual instance decoder -> masks.

The forward pass is split as in docs/design.md so that a non-keyframe can run only
``backbone.forward_shallow`` and ``mask_decoder`` and reuse the keyframe's X4/X5/X6 and kernels:

    x3 = backbone.forward_shallow(images)            # [B,C3,H/8,W/8]
    x4, x5, x6 = backbone.forward_deep(x3)           # strides 16, 32, 64
    mask_features = mask_decoder(x3, x4, x5, x6)     # [B,K,H/8,W/8]
    out = instance_decoder(x6, mask_features, x4)    # logits[B,N,C], objectness[B,N], kernels[B,N,K]
    masks = compute_masks(out["kernels"], mask_features)   # [B,N,H/8,W/8] logits

Images are RGB normalised as (x - 127) / 128 (``normalize_images``); H and W multiples of 32.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .backbone import build_backbone
from .instance_decoder import InstanceDecoder
from .mask_decoder import MaskDecoder

__all__ = ["DEFAULT_MODEL_CONFIG", "MobileInst", "build_model", "compute_masks", "normalize_images",
           "count_parameters", "merge_config"]

DEFAULT_MODEL_CONFIG: dict = {
    "backbone": {"name": "efficientnet_lite0", "pretrained": True, "global_dim": 128, "global_depth": 4,
                 "global_heads": 4},
    "kernel_dim": 128,
    # kernels end with a Gaussian location prior's 5 coefficients (model/instance_decoder.PredictionHeads)
    "location_prior": False,
    "mask_decoder": {"dim": 128},
    "instance_decoder": {"num_queries": 100, "dim": 128, "heads": 4, "ffn_dim": 256},
}


def merge_config(base: dict, override: dict | None) -> dict:
    """Recursive dict merge (override wins) returning a new dict."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 255] (uint8 or float) [B,3,H,W] -> float (x - 127) / 128, EfficientNet-Lite's input."""
    return (images.float() - 127.0) / 128.0


def compute_masks(kernels: torch.Tensor, mask_features: torch.Tensor) -> torch.Tensor:
    """kernels[B,N,K] x mask_features[B,K,h,w] -> mask logits [B,N,h,w]."""
    b, k, h, w = mask_features.shape
    return torch.matmul(kernels, mask_features.reshape(b, k, h * w)).reshape(b, -1, h, w)


class MobileInst(nn.Module):
    """The whole network; ``forward`` composes the split API for training."""

    def __init__(self, backbone: nn.Module, mask_decoder: MaskDecoder, instance_decoder: InstanceDecoder):
        super().__init__()
        self.backbone = backbone
        self.mask_decoder = mask_decoder
        self.instance_decoder = instance_decoder

    def forward(self, images: torch.Tensor) -> dict:
        """images[B,3,H,W] normalised -> dict(logits, objectness, kernels, masks[B,N,H/8,W/8],
        global_queries, features=(x3, x4, x5, x6), mask_features, and in training aux=[{..., masks}])."""
        h, w = images.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"input size {h}x{w}: height and width must be multiples of 32")
        x3 = self.backbone.forward_shallow(images)
        x4, x5, x6 = self.backbone.forward_deep(x3)
        mask_features = self.mask_decoder(x3, x4, x5, x6)
        out = self.instance_decoder(x6, mask_features, x4)
        out["masks"] = compute_masks(out["kernels"], mask_features)
        for aux in out.get("aux", []):
            aux["masks"] = compute_masks(aux["kernels"], mask_features)
        out["features"] = (x3, x4, x5, x6)
        out["mask_features"] = mask_features
        return out


def build_model(cfg: dict | None, num_classes: int) -> MobileInst:
    """Rebuild the network from a ``model`` config section (missing keys take DEFAULT_MODEL_CONFIG)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    cfg = merge_config(DEFAULT_MODEL_CONFIG, cfg)
    unknown = set(cfg) - set(DEFAULT_MODEL_CONFIG)
    if unknown:
        raise ValueError(f"unknown model config keys {sorted(unknown)}; expected {sorted(DEFAULT_MODEL_CONFIG)}")
    kernel_dim, location_prior = int(cfg["kernel_dim"]), bool(cfg["location_prior"])
    try:
        backbone = build_backbone(cfg["backbone"])
        mask_decoder = MaskDecoder(backbone.out_channels, kernel_dim=kernel_dim, location_prior=location_prior,
                                   **cfg["mask_decoder"])
        instance_decoder = InstanceDecoder(backbone.out_channels[3], num_classes, kernel_dim=kernel_dim,
                                           location_prior=location_prior, x4_channels=backbone.out_channels[1],
                                           **cfg["instance_decoder"])
    except TypeError as e:  # an unknown or missing keyword in a section of the model config
        raise ValueError(f"model config: {e}") from None
    return MobileInst(backbone, mask_decoder, instance_decoder)


def count_parameters(model: MobileInst) -> dict[str, int]:
    """Parameter counts per part and in total."""
    parts = {name: sum(p.numel() for p in getattr(model, name).parameters())
             for name in ("backbone", "mask_decoder", "instance_decoder")}
    parts["total"] = sum(parts.values())
    return parts
