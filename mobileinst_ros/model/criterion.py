"""Training losses: Hungarian-matched focal class loss, dice + BCE mask loss, IoU-aware objectness.

Defaults follow SparseInst/MobileInst: class 2.0, dice 2.0, mask BCE 5.0, objectness 1.0.

Targets per image: ``{"labels": long[M], "masks": float[M,H,W] in {0,1} at input resolution,
"ids": long[M]}``. Masks are compared at stride 8 for matching. The mask losses of the matched
queries are either dense, at ``mask_loss_stride`` (4 by default: predictions upsampled 2x), or with
``mask_points`` > 0 taken on that many points per mask, as Mask2Former does: points drawn
uniformly, then the most uncertain prediction points kept (importance sampling), predictions and
full-resolution targets read there bilinearly.

With a location prior (``model.location_prior``: outputs carry ``location`` [B,N,4] = centre (x, y) and
log spread), each matched query also learns its target's centre and spread directly (L1 on the centre
and the log spread; the spread target is 1.5 times the target mask's standard deviation, so the prior
is nearly flat over the object and steep beyond it). Through the mask losses alone the spread hardly
moves: a wide prior's gradient is (distance / spread)², near zero.

Predictions may come in bfloat16 (autocast); the matcher and every loss work in float32.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.profiler import record_function

from .instance_decoder import PredictionHeads
from .mask_decoder import coordinate_grid
from .matcher import HungarianMatcher

__all__ = ["DEFAULT_LOSS_WEIGHTS", "sigmoid_focal_loss", "dice_loss", "mask_iou", "point_sample",
           "uncertain_points", "location_targets", "SetCriterion"]

DEFAULT_LOSS_WEIGHTS = {"class": 2.0, "dice": 2.0, "mask": 5.0, "objectness": 1.0, "location": 1.0}
SPREAD_PER_STD = 1.5  # location prior's target spread, in standard deviations of the target mask


def location_targets(masks: torch.Tensor, min_spread: float) -> torch.Tensor:
    """Soft masks[K,h,w] (stride 8) -> [K,4]: centroid (x, y) in coordinate_grid's [-1, 1] and log of
    the target spread per axis (SPREAD_PER_STD standard deviations, at least ``min_spread``)."""
    xy = coordinate_grid(masks[:1, None])[0].flatten(1)  # [2, h*w]
    weights = masks.flatten(1)
    total = weights.sum(1, keepdim=True).clamp(min=1e-6)
    centre = weights @ xy.T / total  # [K, 2]
    var = (weights[:, None, :] * (xy[None] - centre[:, :, None]) ** 2).sum(-1) / total
    spread = (SPREAD_PER_STD * var.sqrt()).clamp(min=min_spread)
    return torch.cat([centre, spread.log()], dim=1)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Summed focal loss (RetinaNet) of logits vs. 0/1 targets of the same shape."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum()


def dice_loss(mask_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed (1 - soft dice) of mask_logits[K,P] vs targets[K,P]."""
    prob = mask_logits.sigmoid()
    inter = (prob * targets).sum(1)
    return (1 - (2 * inter + 1) / (prob.sum(1) + targets.sum(1) + 1)).sum()


def mask_iou(mask_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of (sigmoid > 0.5) vs (target > 0.5), row-wise: [K,P], [K,P] -> [K]."""
    pred = (mask_logits > 0).float()
    tgt = (targets > 0.5).float()
    inter = (pred * tgt).sum(1)
    return inter / (pred.sum(1) + tgt.sum(1) - inter).clamp(min=1)


def downsample_masks(masks: torch.Tensor, stride: int) -> torch.Tensor:
    """[M,H,W] binary -> [M,H/stride,W/stride] soft coverage (area-averaged)."""
    if stride == 1:
        return masks.float()
    if masks.shape[0] == 0:
        return masks.new_zeros((0, masks.shape[1] // stride, masks.shape[2] // stride), dtype=torch.float32)
    return F.avg_pool2d(masks[:, None].float(), stride, stride)[:, 0]


def point_sample(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear values of maps[K,h,w] at points[K,P,2] ((x, y) in [0, 1] of the whole map) -> [K,P];
    edge values continue past the border, as F.interpolate does for the dense losses."""
    grid = 2.0 * points[:, :, None] - 1.0  # [K,P,1,2] in grid_sample's [-1, 1]
    values = F.grid_sample(maps[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return values[:, 0, :, 0]


@torch.no_grad()
def uncertain_points(mask_logits: torch.Tensor, num_points: int, oversample: float = 3.0,
                     importance: float = 0.75) -> torch.Tensor:
    """Mask2Former's training points for mask_logits[K,h,w] -> [K,num_points,2]: ``importance`` of them
    the most uncertain (|logit| smallest) of ``oversample * num_points`` uniform draws, the rest uniform."""
    k = mask_logits.shape[0]
    candidates = torch.rand(k, int(oversample * num_points), 2, device=mask_logits.device)
    uncertainty = -point_sample(mask_logits, candidates).abs()
    n_imp = int(importance * num_points)
    top = uncertainty.topk(n_imp, dim=1).indices
    chosen = torch.gather(candidates, 1, top[:, :, None].expand(-1, -1, 2))
    rest = torch.rand(k, num_points - n_imp, 2, device=mask_logits.device)
    return torch.cat([chosen, rest], dim=1)


class SetCriterion(nn.Module):
    """Losses of one prediction set (one decoder stage) against per-image targets."""

    def __init__(self, matcher: HungarianMatcher, weights: dict[str, float] | None = None,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, mask_loss_stride: int = 4,
                 mask_points: int = 0, objectness_negatives: bool = False,
                 average_count: Callable[[float], float] | None = None):
        super().__init__()
        self.matcher = matcher
        self.weights = {**DEFAULT_LOSS_WEIGHTS, **(weights or {})}
        unknown = set(self.weights) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weights {sorted(unknown)}; expected {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        if mask_loss_stride not in (1, 2, 4, 8):
            raise ValueError(f"mask_loss_stride must be 1, 2, 4 or 8, got {mask_loss_stride}")
        self.mask_loss_stride = mask_loss_stride
        if mask_points < 0:
            raise ValueError(f"mask_points must be >= 0 (0: dense mask losses), got {mask_points}")
        self.mask_points = mask_points
        # SparseInst trains objectness on the matched queries only; with ``objectness_negatives`` the
        # unmatched ones learn 0 too, so that a duplicate's score falls with its objectness
        self.objectness_negatives = objectness_negatives
        # the count of target masks that normalises the losses; training in several processes averages it over
        # them, so that their averaged gradients are one process's on the whole batch (DETR's num_boxes)
        self.average_count = average_count or (lambda count: count)

    @staticmethod
    def targets_at(targets: list[dict], stride: int) -> list[torch.Tensor]:
        """Per image target masks at ``stride``, cached in the target dicts (several stages share them)."""
        key = f"masks_s{stride}"
        for t in targets:
            if key not in t:
                t[key] = downsample_masks(t["masks"], stride)
        return [t[key] for t in targets]

    def mask_losses(self, mask_logits: torch.Tensor, target_masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Matched pairs at stride 8: mask_logits[K,h,w], full-res target_masks[K,H,W] ->
        summed dice, BCE (mean over pixels or points per mask) and the IoU of each pair (no gradient;
        on the points with ``mask_points``)."""
        mask_logits, target_masks = mask_logits.float(), target_masks.float()
        if self.mask_points:
            points = uncertain_points(mask_logits.detach(), self.mask_points)
            pred = point_sample(mask_logits, points)
            tgt = point_sample(target_masks, points)
        else:
            up = 8 // self.mask_loss_stride
            if up > 1:
                mask_logits = F.interpolate(mask_logits[:, None], scale_factor=up, mode="bilinear",
                                            align_corners=False)[:, 0]
            tgt = downsample_masks(target_masks, self.mask_loss_stride).flatten(1)
            pred = mask_logits.flatten(1)
        return {"dice": dice_loss(pred, tgt),
                "mask": F.binary_cross_entropy_with_logits(pred, tgt, reduction="none").mean(1).sum(),
                "iou": mask_iou(pred.detach(), tgt)}

    def forward(self, outputs: dict[str, torch.Tensor], targets: list[dict]) -> tuple[dict[str, torch.Tensor], list]:
        """outputs: logits[B,N,C], objectness[B,N], masks[B,N,h,w] (stride 8) ->
        ({"class", "dice", "mask", "objectness", "total"}, matched indices per image)."""
        logits, objectness, masks = (outputs[k].float() for k in ("logits", "objectness", "masks"))
        matched_targets = [{"labels": t["labels"], "masks": m} for t, m in zip(targets, self.targets_at(targets, 8))]
        with record_function("matcher"):
            indices = self.matcher(logits.detach(), masks.detach(), matched_targets)
        num_masks = max(self.average_count(sum(int(t["labels"].numel()) for t in targets)), 1)

        class_targets = torch.zeros_like(logits)
        for b, (qi, ti) in enumerate(indices):
            class_targets[b, qi, targets[b]["labels"][ti]] = 1.0
        losses = {"class": sigmoid_focal_loss(logits, class_targets, self.focal_alpha, self.focal_gamma) / num_masks}

        batch_idx = torch.cat([torch.full_like(qi, b) for b, (qi, _) in enumerate(indices)])
        query_idx = torch.cat([qi for qi, _ in indices])
        location = outputs.get("location")
        losses["location"] = masks.sum() * 0.0 if location is None else location.sum() * 0.0
        if query_idx.numel():
            tgt_masks = torch.cat([targets[b]["masks"][ti] for b, (_, ti) in enumerate(indices)])
            m = self.mask_losses(masks[batch_idx, query_idx], tgt_masks)
            losses["dice"] = m["dice"] / num_masks
            losses["mask"] = m["mask"] / num_masks
            iou = m["iou"]
            if location is not None:
                tgt_s8 = torch.cat([mt["masks"][ti] for mt, (_, ti) in zip(matched_targets, indices)])
                wanted = location_targets(tgt_s8, PredictionHeads.min_spread)
                losses["location"] = F.l1_loss(location[batch_idx, query_idx].float(), wanted,
                                               reduction="sum") / num_masks
        else:
            zero = masks.sum() * 0.0  # keeps every head in the graph (DDP)
            losses.update(dice=zero, mask=zero)
            iou = objectness.new_zeros(0)
        # IoU-aware objectness: the score learns how good the query's own mask is
        if self.objectness_negatives:
            target = torch.zeros_like(objectness)
            target[batch_idx, query_idx] = iou
            losses["objectness"] = F.binary_cross_entropy_with_logits(objectness, target, reduction="sum") / num_masks
        else:
            losses["objectness"] = F.binary_cross_entropy_with_logits(
                objectness[batch_idx, query_idx], iou, reduction="sum") / num_masks + objectness.sum() * 0.0
        losses["total"] = sum(self.weights[k] * losses[k] for k in DEFAULT_LOSS_WEIGHTS)
        return losses, indices
