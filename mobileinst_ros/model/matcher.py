"""Hungarian matching of predicted instances (queries) to ground-truth instances.

cost = w_class * focal class cost + w_dice * dice cost + w_mask * pixel BCE cost, computed for all
query/target pairs of an image and solved with scipy's ``linear_sum_assignment``. Masks are compared
at the prediction's resolution (stride 8); targets are soft masks in [0, 1] at that resolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

__all__ = ["focal_class_cost", "dice_cost", "bce_cost", "HungarianMatcher"]


def focal_class_cost(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """logits[...,N,C], labels[M] -> [...,N,M]: focal loss of predicting the label minus that of not predicting it."""
    prob = logits.sigmoid()
    neg = (1 - alpha) * prob ** gamma * -F.logsigmoid(-logits)
    pos = alpha * (1 - prob) ** gamma * -F.logsigmoid(logits)
    return pos[..., labels] - neg[..., labels]


def dice_cost(mask_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mask_logits[...,N,P], targets[M,P] (flattened pixels) -> [...,N,M] of 1 - soft dice."""
    prob = mask_logits.sigmoid()
    inter = prob @ targets.T
    return 1 - (2 * inter + 1) / (prob.sum(-1, keepdim=True) + targets.sum(1) + 1)


def bce_cost(mask_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mask_logits[...,N,P], targets[M,P] -> [...,N,M] mean per-pixel binary cross-entropy.

    With x the logit and t the target, BCE = softplus(x) - x * t: one softplus and one matmul."""
    neg = F.softplus(mask_logits)  # the loss where the target is 0
    return (neg.sum(-1, keepdim=True) - mask_logits @ targets.T) / mask_logits.shape[-1]


class HungarianMatcher:
    """One-to-one assignment minimising the weighted class + dice + BCE cost, per image."""

    def __init__(self, cost_class: float = 2.0, cost_dice: float = 2.0, cost_mask: float = 5.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        self.cost_class, self.cost_dice, self.cost_mask = cost_class, cost_dice, cost_mask
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    @torch.no_grad()
    def cost_matrix(self, logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
                    target_masks: torch.Tensor) -> torch.Tensor:
        """logits[...,N,C], mask_logits[...,N,h,w], labels[M], target_masks[M,h,w] -> cost[...,N,M]."""
        pred = mask_logits.flatten(-2).float()
        tgt = target_masks.flatten(1).float()
        return (self.cost_class * focal_class_cost(logits.float(), labels, self.focal_alpha, self.focal_gamma)
                + self.cost_dice * dice_cost(pred, tgt) + self.cost_mask * bce_cost(pred, tgt))

    @torch.no_grad()
    def __call__(self, logits: torch.Tensor, mask_logits: torch.Tensor,
                 targets: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """logits[B,N,C], mask_logits[B,N,h,w], targets[b] = {labels[M], masks[M,h,w]} ->
        per image (query indices[K], target indices[K]), K = min(N, M), sorted by query index.

        The costs of every image's queries against all targets of the batch are one batched product
        (few targets per image: cheaper than one small product per image); each image then takes its
        own targets' columns."""
        sizes = [int(t["labels"].numel()) for t in targets]
        empty = torch.zeros(0, dtype=torch.long, device=logits.device)
        if not sum(sizes):
            return [(empty, empty.clone()) for _ in targets]
        labels = torch.cat([t["labels"] for t in targets])
        masks = torch.cat([t["masks"] for t in targets])
        cost = self.cost_matrix(logits, mask_logits, labels, masks).cpu().numpy()
        out, start = [], 0
        for b, size in enumerate(sizes):
            if size == 0:
                out.append((empty, empty.clone()))
                continue
            rows, cols = linear_sum_assignment(cost[b, :, start:start + size])
            start += size
            out.append((torch.as_tensor(rows, dtype=torch.long, device=logits.device),
                        torch.as_tensor(cols, dtype=torch.long, device=logits.device)))
        return out
