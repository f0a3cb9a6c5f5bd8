"""Dual transformer instance decoder: N learnable queries -> class logits, objectness, mask kernels.

MobileInst decodes instances in two light stages:
- global stage: queries cross-attend to the global feature X6 (stride 64), then self-attend;
- local stage: queries cross-attend to the mask features max-pooled to stride 64, then self-attend.
Keys carry 2-D sine position embeddings; queries have learnable content and position embeddings.

``local="activation"`` replaces the local stage's cross-attention by SparseInst's instance activation
maps at the mask features' own stride 8: one map per query from a 1x1 convolution of the mask features
and the cell coordinates, and each query takes in the features averaged under its map. Pooled tokens are
coarser than a small object (several people 12-25 px wide share a stride-32 cell), a stride-8 map is not.
Each stage has its own prediction heads so that both can be supervised (QueryInst's parallel
supervision); at inference only the local stage's predictions are used.

``mask_pooled_class=True`` adds to the local stage's class logits a linear class read from the backbone's
stride-16 features X4 averaged under each query's own mask (``MaskPooledClassifier``): a linear probe on such
features names unseen shapes of 300-3000 px right about 20 points more often than the query's class does
(docs/training.md, "What the class reads").

The stages are separate methods because training passes frame t's global-stage queries through frame
t+d's local stage (temporal query passing).

Shapes: x6[B,C6,h6,w6], mask_features[B,K,H/8,W/8] (x4[B,C4,H/16,W/16] with mask_pooled_class) ->
  logits[B,N,C], objectness[B,N], kernels[B,N,K] (+ global_queries[B,N,D], aux predictions in training)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .mask_decoder import LOCATION_TERMS, coordinate_grid

__all__ = ["sine_position_embedding", "InstanceDecoder", "InstanceActivationStage", "MaskPooledClassifier"]


def sine_position_embedding(h: int, w: int, dim: int, device: torch.device, temperature: float = 10000.0) -> torch.Tensor:
    """DETR's 2-D sine embedding, normalised to [0, 2π] over the grid: [h*w, dim] (dim divisible by 4)."""
    quarter = dim // 4
    ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h * 2 * math.pi
    xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w * 2 * math.pi
    freqs = temperature ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    y = ys[:, None] / freqs  # [h, quarter]
    x = xs[:, None] / freqs  # [w, quarter]
    y_emb = torch.cat([y.sin(), y.cos()], dim=1)[:, None, :].expand(h, w, 2 * quarter)
    x_emb = torch.cat([x.sin(), x.cos()], dim=1)[None, :, :].expand(h, w, 2 * quarter)
    return torch.cat([y_emb, x_emb], dim=2).reshape(h * w, 4 * quarter)


class CrossAttention(nn.Module):
    """Multi-head attention [B,Nq,D] x [B,L,D] -> [B,Nq,D], written by hand (no nn.MultiheadAttention)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.q(query)), self._split(self.k(key)), self._split(self.v(value))
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.head_dim ** -0.5, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2)
        return self.out(out.reshape(out.shape[0], out.shape[1], -1))


class _QueryStage(nn.Module):
    """The tail both local stages share: self-attention among the queries, then FFN (post-norm). A
    subclass owns ``self_attn``, ``ffn``, ``norm2`` and ``norm3`` (built in its own order, so that seeded
    initialisation stays as it was)."""

    def refine(self, q: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        """q[B,N,D], query_pos[1,N,D] -> [B,N,D]."""
        qp = q + query_pos
        q = self.norm2(q + self.self_attn(qp, qp, q))
        return self.norm3(q + self.ffn(q))


class DecoderStage(_QueryStage):
    """Cross-attention to a feature map, self-attention among queries, FFN (post-norm, as DETR)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int):
        super().__init__()
        self.cross = CrossAttention(dim, heads)
        self.self_attn = CrossAttention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor) -> torch.Tensor:
        """queries[B,N,D], query_pos[1,N,D], memory[B,L,D], memory_pos[1,L,D] -> [B,N,D]."""
        q = self.norm1(queries + self.cross(queries + query_pos, memory + memory_pos, memory))
        return self.refine(q, query_pos)


class InstanceActivationStage(_QueryStage):
    """SparseInst's instance activation maps as the local stage: N maps over the stride-8 mask features,
    each query adds the features averaged under its map, then self-attention and FFN as DecoderStage.

    queries[B,N,D], query_pos[1,N,D], mask_features[B,K,h,w] -> [B,N,D]
    """

    def __init__(self, num_queries: int, kernel_dim: int, dim: int, heads: int, ffn_dim: int,
                 prior_prob: float = 0.01):
        super().__init__()
        # coordinates as input too (SparseInst does the same): a map can then prefer a place
        self.activation = nn.Conv2d(kernel_dim + 2, num_queries, 1)
        self.proj = nn.Linear(kernel_dim, dim)
        self.self_attn = CrossAttention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        nn.init.normal_(self.activation.weight, std=0.01)  # maps start near the prior, as SparseInst's
        nn.init.constant_(self.activation.bias, -math.log((1 - prior_prob) / prior_prob))

    def _activations(self, mask_features: torch.Tensor) -> torch.Tensor:
        """mask_features[B,K,h,w] -> unnormalised maps [B,N,h*w] in (0, 1)."""
        x = torch.cat([mask_features, coordinate_grid(mask_features)], dim=1)
        return torch.sigmoid(self.activation(x)).flatten(2)

    @staticmethod
    def _mass(activations: torch.Tensor) -> torch.Tensor:
        return activations.sum(-1, keepdim=True).clamp(min=1e-6)

    def activation_maps(self, mask_features: torch.Tensor) -> torch.Tensor:
        """mask_features[B,K,h,w] -> maps [B,N,h*w], each summing to 1 over the cells."""
        activations = self._activations(mask_features)
        return activations / self._mass(activations)

    def forward(self, queries: torch.Tensor, query_pos: torch.Tensor, mask_features: torch.Tensor) -> torch.Tensor:
        activations = self._activations(mask_features)
        # the average under each map, normalised after the product: N x K divisions instead of N x h*w
        pooled = torch.matmul(activations, mask_features.flatten(2).transpose(1, 2)) / self._mass(activations)
        return self.refine(self.norm1(queries + self.proj(pooled)), query_pos)


class PredictionHeads(nn.Module):
    """Per query: class logits [C], IoU-aware objectness logit [1], mask kernel [K] (+5 with a location
    prior).

    ``location=True``: each query also predicts a centre (cx, cy) in [-1, 1] and a spread (sx, sy), and its
    kernel gains five coefficients that, dotted with the mask decoder's ``location_basis``, add
    -((x - cx)² / sx² + (y - cy)² / sy²) / 2 to its mask logits: a Gaussian log-prior (CondInst gives its
    mask heads coordinates relative to the instance for the same reason). Content alone makes one kernel
    fire on every look-alike; the prior keeps each mask near its own object. The spread starts wide
    (``init_spread``) so that training begins as without it.
    """

    min_spread, max_spread, init_spread = 0.04, 4.0, 3.0

    def __init__(self, dim: int, num_classes: int, kernel_dim: int, prior_prob: float = 0.01,
                 location: bool = False):
        super().__init__()
        self.cls = nn.Linear(dim, num_classes)
        self.obj = nn.Linear(dim, 1)
        self.kernel = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, kernel_dim))
        bias = -math.log((1 - prior_prob) / prior_prob)  # focal-loss prior: start with low scores
        nn.init.constant_(self.cls.bias, bias)
        nn.init.constant_(self.obj.bias, bias)
        self.location = nn.Linear(dim, 4) if location else None
        if location:
            nn.init.normal_(self.location.weight, std=0.01)
            nn.init.zeros_(self.location.bias)
            nn.init.constant_(self.location.bias[2:], math.log(self.init_spread))

    def centre_and_log_spread(self, q: torch.Tensor) -> torch.Tensor:
        """q[B,N,D] -> [B,N,4]: centre (x, y) in [-1, 1], log spread (x, y) (what the criterion supervises)."""
        raw = self.location(q)
        log_spread = raw[..., 2:].clamp(math.log(self.min_spread), math.log(self.max_spread))
        return torch.cat([torch.tanh(raw[..., :2]), log_spread], dim=-1)

    @staticmethod
    def location_coefficients(location: torch.Tensor) -> torch.Tensor:
        """centre_and_log_spread's [B,N,4] -> [B,N,5], the coefficients of location_basis' (x, y, x², y², 1)."""
        centre = location[..., :2]
        precision = torch.exp(-2.0 * location[..., 2:])  # 1 / spread²
        constant = -0.5 * (centre * centre * precision).sum(-1, keepdim=True)
        return torch.cat([centre * precision, -0.5 * precision, constant], dim=-1)

    def forward(self, q: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"logits": self.cls(q), "objectness": self.obj(q).squeeze(-1), "kernels": self.kernel(q)}
        if self.location is not None:
            out["location"] = self.centre_and_log_spread(q)
            out["kernels"] = torch.cat([out["kernels"], self.location_coefficients(out["location"])], dim=-1)
        return out


class MaskPooledClassifier(nn.Module):
    """Class logits from X4 averaged under each query's mask at stride 16.

    The masks come from the kernels on the mask features average-pooled to stride 16, both detached: the class
    loss trains what is pooled and the linear layer, not where the masks lie. The layer starts at zero, so a
    model gains it without changing its predictions.

    kernels[B,N,K], mask_features[B,K,H/8,W/8], x4[B,C4,H/16,W/16] -> logits[B,N,C]
    """

    def __init__(self, x4_channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(x4_channels)
        self.cls = nn.Linear(x4_channels, num_classes)
        nn.init.zeros_(self.cls.weight)
        nn.init.zeros_(self.cls.bias)

    def forward(self, kernels: torch.Tensor, mask_features: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
        coarse = F.avg_pool2d(mask_features.detach(), 2)  # H/8 is a multiple of 4: stride 16 is x4's grid
        weights = torch.sigmoid(torch.matmul(kernels.detach(), coarse.flatten(2)))  # [B,N,h16*w16]
        pooled = torch.matmul(weights, x4.flatten(2).transpose(1, 2))
        pooled = pooled / weights.sum(-1, keepdim=True).clamp(min=1e-6)
        return self.cls(self.norm(pooled))


class InstanceDecoder(nn.Module):
    """Global stage on X6, local stage on the mask features (pooled tokens or activation maps), heads
    after each stage."""

    def __init__(self, global_channels: int, num_classes: int, num_queries: int = 100, dim: int = 128,
                 kernel_dim: int = 128, heads: int = 4, ffn_dim: int = 256, pool_factor: int = 8,
                 local: str = "attention", location_prior: bool = False, mask_pooled_class: bool = False,
                 x4_channels: int | None = None):
        super().__init__()
        if local not in ("attention", "activation"):
            raise ValueError(f"instance_decoder local must be attention|activation, got {local!r}")
        self.num_queries, self.dim, self.pool_factor = num_queries, dim, pool_factor
        self.query_feat = nn.Parameter(torch.randn(1, num_queries, dim) * 0.1)
        self.query_pos = nn.Parameter(torch.randn(1, num_queries, dim) * 0.1)
        self.global_proj = nn.Linear(global_channels, dim)
        self.global_stage = DecoderStage(dim, heads, ffn_dim)
        feature_dim = kernel_dim + (LOCATION_TERMS if location_prior else 0)  # the mask features' channels
        if local == "activation":
            self.local_proj = None
            self.local_stage = InstanceActivationStage(num_queries, feature_dim, dim, heads, ffn_dim)
        else:
            self.local_proj = nn.Linear(feature_dim, dim)
            self.local_stage = DecoderStage(dim, heads, ffn_dim)
        self.global_heads = PredictionHeads(dim, num_classes, kernel_dim, location=location_prior)
        self.local_heads = PredictionHeads(dim, num_classes, kernel_dim, location=location_prior)
        if mask_pooled_class and not x4_channels:
            raise ValueError("instance_decoder mask_pooled_class needs the backbone's x4 channels")
        self.mask_class = MaskPooledClassifier(x4_channels, num_classes) if mask_pooled_class else None

    @staticmethod
    def _tokens(x: torch.Tensor, proj: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,C,h,w] -> tokens [B,h*w,D] and their sine embeddings [1,h*w,D]."""
        h, w = x.shape[-2], x.shape[-1]  # not int(): the export keeps the sizes symbolic
        tokens = proj(x.flatten(2).transpose(1, 2))
        return tokens, sine_position_embedding(h, w, tokens.shape[-1], x.device)[None]

    def forward_global(self, x6: torch.Tensor) -> torch.Tensor:
        """x6[B,C6,h6,w6] -> global-stage queries [B,N,D]."""
        memory, pos = self._tokens(x6, self.global_proj)
        queries = self.query_feat.expand(x6.shape[0], -1, -1)
        return self.global_stage(queries, self.query_pos, memory, pos)

    def forward_local(self, global_queries: torch.Tensor, mask_features: torch.Tensor) -> torch.Tensor:
        """global_queries[B,N,D], mask_features[B,K,H/8,W/8] -> local-stage queries [B,N,D]."""
        if self.local_proj is None:
            return self.local_stage(global_queries, self.query_pos, mask_features)
        pooled = F.max_pool2d(mask_features, self.pool_factor, self.pool_factor, ceil_mode=True)
        memory, pos = self._tokens(pooled, self.local_proj)
        return self.local_stage(global_queries, self.query_pos, memory, pos)

    def predict(self, queries: torch.Tensor, mask_features: torch.Tensor,
                x4: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Final (local-stage) heads: queries[B,N,D] on this frame's features -> logits, objectness, kernels."""
        out = self.local_heads(queries)
        if self.mask_class is not None:
            if x4 is None:
                raise ValueError("this instance decoder reads x4 (mask_pooled_class): pass it")
            out["logits"] = out["logits"] + self.mask_class(out["kernels"], mask_features, x4)
        return out

    def forward(self, x6: torch.Tensor, mask_features: torch.Tensor, x4: torch.Tensor | None = None) -> dict:
        """-> dict(logits[B,N,C], objectness[B,N], kernels[B,N,K], global_queries[B,N,D], aux=[...])."""
        global_queries = self.forward_global(x6)
        out = self.predict(self.forward_local(global_queries, mask_features), mask_features, x4)
        out["global_queries"] = global_queries
        if self.training:
            out["aux"] = [self.global_heads(global_queries)]
        return out
