"""A hand-weighted network with MobileInst's split API whose answers are known: it segments pure red,
green and blue objects on a gray background (query/class/track 0, 1, 2). Exported with the real
exporter and run by the real engine, it lets tests check kernel reuse, association and keyframes
exactly, without trained weights. White pixels make its mask features NaN (tests of dropped frames).

Input normalisation (x - 127) / 128: red (255, 0, 0) -> (1, -1, -1), gray 127 -> 0.
x3 = 8x8 average pool (stride 8) and 5 more channels, x6 = global max per colour, mask features =
(colours, 1) (D = 4);
kernel c: 8 x_c - 4 (sum of the other channels) - 8, positive where colour c covers over half a cell;
objectness c: 20 (max x_c - 0.5), so a query fires only when its colour is in the image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

COLOURS = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255)}
GRAY = 127


class _Backbone(nn.Module):
    def forward_shallow(self, images: torch.Tensor) -> torch.Tensor:
        # 8 channels like a real backbone's many (the colours, then half of them, then two zeros)
        rgb = F.avg_pool2d(images, 8, 8)
        return torch.cat([rgb, rgb / 2, torch.zeros_like(rgb[:, :2])], dim=1)

    def forward_deep(self, x3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x4 = F.avg_pool2d(x3, 2, 2)
        x5 = F.avg_pool2d(x4, 2, 2)
        return x4, x5, torch.amax(x3[:, :3], dim=(2, 3), keepdim=True)


class _MaskDecoder(nn.Module):
    def context(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor,
                x6: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # 0 * (...) keeps x4..x6 as graph inputs; a neutral gate and shift
        unused = 0 * (x4.mean() + x5.mean() + x6.mean())
        return x4, x5, torch.ones_like(x3[:, :1]), torch.zeros_like(x3[:, :1]) + unused

    def from_context(self, x3: torch.Tensor, p4: torch.Tensor, p5: torch.Tensor, gate3: torch.Tensor,
                     shift3: torch.Tensor) -> torch.Tensor:
        rgb = x3[:, :3] * gate3 + shift3
        unused = 0 * (p4.mean() + p5.mean())
        # sqrt(< 0) on white pixels turns them into NaN
        poison = 0 * torch.sqrt(2.5 - rgb.sum(dim=1, keepdim=True))
        return torch.cat([rgb, torch.ones_like(rgb[:, :1])], dim=1) + poison + unused

    def forward(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor, x6: torch.Tensor) -> torch.Tensor:
        return self.from_context(x3, *self.context(x3, x4, x5, x6))


class _InstanceDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        kernels = torch.full((3, 4), -4.0)
        kernels[torch.arange(3), torch.arange(3)] = 8.0
        kernels[:, 3] = -8.0
        self.register_buffer("kernels", kernels)
        self.register_buffer("class_logits", torch.eye(3) * 10 - 5)
        self.num_queries = 3
        self.mask_class = None  # as InstanceDecoder without mask_pooled_class: the graph takes no x4

    def forward(self, x6: torch.Tensor, mask_features: torch.Tensor,
                x4: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        b = x6.shape[0]
        objectness = 20 * (x6.flatten(1) - 0.5) + 0 * mask_features.mean()
        return {"logits": self.class_logits.expand(b, 3, 3), "objectness": objectness,
                "kernels": self.kernels.expand(b, 3, 4)}


class OracleModel(nn.Module):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = _Backbone()
        self.mask_decoder = _MaskDecoder()
        self.instance_decoder = _InstanceDecoder()


CLASSES = ["red", "green", "blue"]


def export_oracle(out: Path, resolutions: list[tuple[int, int]]) -> Path:
    """The oracle network exported by mobileinst-export's code to ``out`` (a new directory) at ``resolutions``
    (w, h); returns ``out``."""
    from mobileinst_ros.export.export import export_model  # noqa: PLC0415  (keeps this module light to import)

    torch.set_num_threads(1)
    export_model(OracleModel().eval(), CLASSES, out, resolutions)
    return out


def frame(size: tuple[int, int], boxes: dict[int, tuple[int, int, int, int]], white: bool = False) -> np.ndarray:
    """RGB uint8 image of ``size`` (w, h): gray, with a square of colour c at each ``boxes[c]`` = (x, y, w, h)."""
    w, h = size
    image = np.full((h, w, 3), GRAY, np.uint8)
    for colour, (x, y, bw, bh) in boxes.items():
        image[y:y + bh, x:x + bw] = COLOURS[colour]
    if white:
        image[: h // 2, : w // 2] = 255
    return image


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """Bool (h, w) mask of one box."""
    w, h = size
    mask = np.zeros((h, w), bool)
    x, y, bw, bh = box
    mask[y:y + bh, x:x + bw] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
