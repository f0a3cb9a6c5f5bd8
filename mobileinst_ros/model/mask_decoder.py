"""Semantic-enhanced mask decoder: (X3, X4, X5, X6) -> mask features at stride 8.

MobileInst's mask decoder fuses the local features top-down then bottom-up, and injects the global
feature X6 through semantic enhancers so that the stride-8 mask features carry image-level context.
All convolutions after the 1x1 laterals are depthwise-separable to keep it light on a CPU.

Shapes (D = ``dim``, K = ``kernel_dim``):
  x3[B,C3,H/8,W/8], x4[B,C4,H/16,W/16], x5[B,C5,H/32,W/32], x6[B,C6,H/64,W/64]
  -> mask_features[B,K,H/8,W/8]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ConvBNAct

__all__ = ["DSConv", "SemanticEnhancer", "MaskDecoder", "coordinate_grid", "location_basis", "LOCATION_TERMS"]

LOCATION_TERMS = 5  # channels of location_basis


def resize_to(x: torch.Tensor, ref: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resize x to ref's spatial size (an explicit size, so the export is exact; not int(): the export
    keeps the size symbolic so that one graph serves every resolution)."""
    if mode == "nearest":
        return F.interpolate(x, size=ref.shape[-2:], mode="nearest")
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def coordinate_grid(ref: torch.Tensor) -> torch.Tensor:
    """[B, 2, h, w]: x and y of each cell centre of ref's grid, in [-1, 1] (from ref's shape only, so
    one exported graph serves every resolution)."""
    ones = torch.ones_like(ref[:, :1])
    h, w = ref.shape[-2], ref.shape[-1]
    x = (ones.cumsum(-1) - 0.5) * (2.0 / w) - 1.0
    y = (ones.cumsum(-2) - 0.5) * (2.0 / h) - 1.0
    return torch.cat([x, y], dim=1)


def location_basis(ref: torch.Tensor) -> torch.Tensor:
    """[B, 5, h, w]: x, y, x², y² and 1 over ref's grid (x, y as ``coordinate_grid``). A kernel's last
    five elements dotted with these give a quadratic in the cell position: the instance decoder's
    location prior (``PredictionHeads``)."""
    xy = coordinate_grid(ref)
    return torch.cat([xy, xy * xy, torch.ones_like(xy[:, :1])], dim=1)


class DSConv(nn.Sequential):
    """Depthwise kxk (optionally strided) + pointwise 1x1, each with BN + ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1):
        super().__init__(ConvBNAct(in_ch, in_ch, kernel, stride, groups=in_ch), ConvBNAct(in_ch, out_ch, 1))


class SemanticEnhancer(nn.Module):
    """Inject the global feature into a local one: F' = F * sigmoid(A(G↑)) + B(G↑).

    local[B,D,h,w], global[B,C6,h6,w6] -> [B,D,h,w]; G↑ is X6 bilinearly upsampled to (h, w).
    """

    def __init__(self, dim: int, global_ch: int, upsample: str = "bilinear"):
        super().__init__()
        self.gate = ConvBNAct(global_ch, dim, 1, act=False)
        self.embed = ConvBNAct(global_ch, dim, 1, act=False)
        self.upsample = upsample

    def upsampled(self, glob: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sigmoid(A(G↑)) and B(G↑) at ref's size: [B,D,h,w] each."""
        return (torch.sigmoid(resize_to(self.gate(glob), ref, self.upsample)),
                resize_to(self.embed(glob), ref, self.upsample))

    def forward(self, local: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        gate, embed = self.upsampled(glob, local)
        return local * gate + embed


class MaskDecoder(nn.Module):
    """Top-down + bottom-up fusion of X3..X5 with semantic enhancers fed by X6.

    Inference-cost options (defaults are the trained model's; docs/performance.md measures them):
    ``fuse="sum"`` adds the three stride-8 levels instead of concatenating them (the fusing DSConv
    then works on ``dim`` channels, not ``3 * dim``); ``enhance_stride8=False`` drops the enhancer at
    stride 8 (two full-resolution resizes, a sigmoid, a product; X6 still reaches stride 8 through
    P4); ``upsample="nearest"`` resizes by nearest neighbour instead of bilinear.

    ``coords=True`` feeds the cell coordinates (``coordinate_grid``) into the fusing DSConv, as SparseInst
    and SOLO/CondInst give their mask branches coordinates: without them a kernel's dot product with the
    mask features cannot tell two objects that look alike apart, and one query's mask covers every
    person in a crowd (docs/training.md).

    ``location_prior=True`` appends ``location_basis`` (5 channels) to the mask features, for kernels
    that carry a location prior: mask_features then has ``kernel_dim + 5`` channels.
    """

    def __init__(self, in_channels: tuple[int, int, int, int], dim: int = 128, kernel_dim: int = 128,
                 fuse: str = "concat", enhance_stride8: bool = True, upsample: str = "bilinear",
                 coords: bool = False, location_prior: bool = False):
        super().__init__()
        if fuse not in ("concat", "sum") or upsample not in ("bilinear", "nearest"):
            raise ValueError(f"mask_decoder fuse must be concat|sum and upsample bilinear|nearest, "
                             f"got {fuse!r}, {upsample!r}")
        c3, c4, c5, c6 = in_channels
        self.fuse_mode, self.upsample, self.coords, self.location_prior = fuse, upsample, coords, location_prior
        self.lateral3 = ConvBNAct(c3, dim, 1)
        self.lateral4 = ConvBNAct(c4, dim, 1)
        self.lateral5 = ConvBNAct(c5, dim, 1)
        self.enhance5 = SemanticEnhancer(dim, c6, upsample)
        self.enhance4 = SemanticEnhancer(dim, c6, upsample)
        self.enhance3 = SemanticEnhancer(dim, c6, upsample) if enhance_stride8 else None
        self.top_down4 = DSConv(dim, dim)
        self.top_down3 = DSConv(dim, dim)
        self.down3 = DSConv(dim, dim, stride=2)
        self.down4 = DSConv(dim, dim, stride=2)
        self.bottom_up4 = DSConv(dim, dim)
        self.bottom_up5 = DSConv(dim, dim)
        self.fuse = DSConv((3 * dim if fuse == "concat" else dim) + (2 if coords else 0), dim)
        self.project = nn.Conv2d(dim, kernel_dim, 1)

    def forward(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor, x6: torch.Tensor) -> torch.Tensor:
        return self.from_context(x3, *self.context(x3, x4, x5, x6))

    def context(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor,
                x6: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What depends on the deep features only (x3 gives just the stride-8 size):
        p4[B,D,H/16,W/16], p5[B,D,H/32,W/32], and the stride-8 enhancement of X3's lateral as
        ``gate3 * lateral3(x3) + shift3`` (gate3[B,D|1,H/8,W/8], shift3[B,D,H/8,W/8], P4 upsampled
        included). A non-keyframe reuses the keyframe's context: its three full-resolution resizes are
        the mask decoder's most expensive part."""
        up = self.upsample
        # top-down: coarse context flows to fine levels, each level enhanced with X6
        p5 = self.enhance5(self.lateral5(x5), x6)
        p4 = self.top_down4(self.enhance4(self.lateral4(x4), x6) + resize_to(p5, x4, up))
        shift3 = resize_to(p4, x3, up)
        if self.enhance3 is None:
            return p4, p5, torch.ones_like(shift3[:, :1]), shift3  # a neutral gate, broadcast over channels
        gate3, embed3 = self.enhance3.upsampled(x6, x3)
        return p4, p5, gate3, shift3 + embed3

    def from_context(self, x3: torch.Tensor, p4: torch.Tensor, p5: torch.Tensor, gate3: torch.Tensor,
                     shift3: torch.Tensor) -> torch.Tensor:
        """x3 and a ``context`` -> mask_features[B,K(+5),H/8,W/8]."""
        up = self.upsample
        p3 = self.top_down3(self.lateral3(x3) * gate3 + shift3)
        # bottom-up: fine detail flows back to the coarse levels
        n4 = self.bottom_up4(p4 + self.down3(p3))
        n5 = self.bottom_up5(p5 + self.down4(n4))
        if self.fuse_mode == "sum":
            levels = [p3 + resize_to(n4, p3, up) + resize_to(n5, p3, up)]
        else:
            levels = [p3, resize_to(n4, p3, up), resize_to(n5, p3, up)]
        if self.coords:
            levels.append(coordinate_grid(p3))
        features = self.project(self.fuse(levels[0] if len(levels) == 1 else torch.cat(levels, dim=1)))
        return torch.cat([features, location_basis(features)], dim=1) if self.location_prior else features

    @property
    def location_terms(self) -> int:
        """Channels of location_basis at the end of the mask features (0 without a location prior)."""
        return LOCATION_TERMS if self.location_prior else 0
