"""Post-processing of one image's predictions (torch; the robot has its own numpy version in runtime/).

score = sqrt(sigmoid(cls) * sigmoid(objectness)) per query (its best class), masks thresholded at
``mask_threshold``, score rescored by the mean mask probability inside the mask, then the ``top_k``
best above ``score_threshold``. No NMS: one query per instance by construction (Hungarian training).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["instance_scores", "postprocess"]


def instance_scores(logits: torch.Tensor, objectness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits[N,C], objectness[N] -> (scores[N], labels[N]) with score = sqrt(p_cls * p_obj)."""
    probs = torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(objectness)[:, None])
    return probs.max(dim=-1)


@torch.no_grad()
def postprocess(logits: torch.Tensor, objectness: torch.Tensor, mask_logits: torch.Tensor,
                image_size: tuple[int, int], score_threshold: float = 0.3, mask_threshold: float = 0.5,
                top_k: int = 10, pre_threshold: float = 0.05) -> dict[str, torch.Tensor]:
    """One image: logits[N,C], objectness[N], mask_logits[N,h,w] (stride 8) ->
    dict(scores[k], labels[k], masks[k,H,W] bool, query_index[k]) sorted by score, k <= top_k.

    ``pre_threshold`` drops hopeless queries before the (costly) upsampling of their masks.
    """
    scores, labels = instance_scores(logits, objectness)
    keep = torch.nonzero(scores > pre_threshold).flatten()
    probs = torch.sigmoid(mask_logits[keep])
    if keep.numel():
        probs = F.interpolate(probs[None], size=image_size, mode="bilinear", align_corners=False)[0]
    else:
        probs = probs.new_zeros((0, *image_size))
    masks = probs > mask_threshold
    mask_scores = (probs * masks).flatten(1).sum(1) / masks.flatten(1).sum(1).clamp(min=1)
    final = scores[keep] * mask_scores
    order = torch.argsort(final, descending=True)[:top_k]
    order = order[final[order] >= score_threshold]
    return {"scores": final[order], "labels": labels[keep][order], "masks": masks[order],
            "query_index": keep[order]}
