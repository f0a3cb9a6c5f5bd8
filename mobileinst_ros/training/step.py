"""One training step on frame pairs (t, t+d): all of MobileInst's supervision in one module.

Losses (each a weighted sum of class / dice / mask BCE / objectness from ``SetCriterion``):
- ``main``: local-stage predictions of every frame;
- ``aux``: global-stage predictions of every frame (QueryInst's parallel supervision);
- ``temporal``: frame t's global-stage queries passed through frame t+d's local stage, supervised
  with t+d's targets (temporal query passing, MobileInst's training for kernel reuse);
- ``reuse`` (when the caller asks: ``Trainer.step`` draws it with ``loss.feature_reuse_prob``): frame t+d's
  mask features computed from its own X3 but frame t's X4/X5/X6, masked with frame t's kernels, supervised
  with t+d's masks of the same instance ids: what a non-keyframe does at run time.

The module wraps model + criterion so that DistributedDataParallel sees one ``forward``. With
``autocast_dtype`` (bfloat16 on a CPU with AMX/AVX512-BF16) the network runs under autocast; the
matcher and the losses always take float32.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.autograd.profiler import record_function

from ..model.criterion import SetCriterion
from ..model.mobileinst import MobileInst, compute_masks

__all__ = ["TrainStep"]


class TrainStep(nn.Module):
    def __init__(self, model: MobileInst, criterion: SetCriterion, aux_weight: float = 1.0,
                 temporal_weight: float = 1.0, reuse_weight: float = 1.0, autocast_dtype: torch.dtype | None = None):
        super().__init__()
        self.model, self.criterion = model, criterion
        self.aux_weight, self.temporal_weight, self.reuse_weight = aux_weight, temporal_weight, reuse_weight
        self.autocast_dtype = autocast_dtype

    def _network(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Where the network runs: autocast to ``autocast_dtype`` when set."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    def forward(self, images: torch.Tensor, targets: list[list[dict]], reuse: bool) -> dict[str, torch.Tensor]:
        """images[B,2,3,H,W] normalised, targets[B][2] -> losses {total, main, aux, temporal, reuse,
        main_class, main_dice, main_mask, main_objectness}; the ``reuse`` loss is 0 unless ``reuse``."""
        b = images.shape[0]
        flat_targets = [t for pair in targets for t in pair]  # order: clip0 t, clip0 t+d, clip1 t, ...
        with record_function("network"), self._network(images.device):
            out = self.model(images.flatten(0, 1))
            passed = self.passed_predictions(out, b)
            reused = self.reused_mask_features(out, b) if reuse else None
        with record_function("losses"):
            main, indices = self.criterion(out, flat_targets)
            aux = sum((self.criterion(a, flat_targets)[0]["total"] for a in out["aux"]), torch.zeros(()))
            losses = {f"main_{k}": v.detach() for k, v in main.items() if k != "total"}
            losses.update(main=main["total"], aux=aux)
            later = [p[1] for p in targets]
            losses["temporal"] = self.criterion(passed, later)[0]["total"]
            losses["reuse"] = self._reuse_loss(out, reused, targets, indices[0::2]) if reuse else torch.zeros(())
        losses["total"] = (losses["main"] + self.aux_weight * aux + self.temporal_weight * losses["temporal"]
                           + self.reuse_weight * losses["reuse"])
        return losses

    def passed_predictions(self, out: dict, b: int) -> dict[str, torch.Tensor]:
        """Temporal query passing: frame t's global-stage queries through frame t+d's local stage.
        ``out`` is the model's output on [B*2] frames -> logits[B,N,C], objectness, kernels, masks."""
        decoder = self.model.instance_decoder
        mask_features = out["mask_features"].unflatten(0, (b, 2))[:, 1]
        x4 = out["features"][1].unflatten(0, (b, 2))[:, 1]
        global_queries = out["global_queries"].unflatten(0, (b, 2))[:, 0]
        passed = decoder.predict(decoder.forward_local(global_queries, mask_features), mask_features, x4)
        passed["masks"] = compute_masks(passed["kernels"], mask_features)
        return passed

    def reused_mask_features(self, out: dict, b: int) -> torch.Tensor:
        """Frame t+d's mask features from its own X3 and frame t's X4/X5/X6: [B,K,H/8,W/8]."""
        x3, x4, x5, x6 = (f.unflatten(0, (b, 2)) for f in out["features"])
        return self.model.mask_decoder(x3[:, 1], x4[:, 0], x5[:, 0], x6[:, 0])

    def _reuse_loss(self, out: dict, reused: torch.Tensor, targets: list[list[dict]],
                    first_indices: list) -> torch.Tensor:
        """Mask loss of frame t's kernels on ``reused`` mask features (x3 of t+d, x4/x5/x6 of t)."""
        b = len(targets)
        kernels = out["kernels"].unflatten(0, (b, 2))[:, 0]
        preds, tgts = [], []
        for i, ((query_idx, target_idx), (first, second)) in enumerate(zip(first_indices, targets)):
            where = {int(v): j for j, v in enumerate(second["ids"])}
            for q, t in zip(query_idx.tolist(), target_idx.tolist()):
                j = where.get(int(first["ids"][t]))
                if j is not None:
                    preds.append((i, q))
                    tgts.append(second["masks"][j])
        count = self.criterion.average_count(len(preds))  # on every process, before any of them returns
        if not preds:
            return reused.sum() * 0.0  # keeps the mask decoder in the graph
        bi, qi = torch.tensor(preds).T
        with record_function("network"), self._network(reused.device):
            masks = compute_masks(kernels[bi, qi][:, None], reused[bi]).squeeze(1)
        m = self.criterion.mask_losses(masks.float(), torch.stack(tgts))
        w = self.criterion.weights
        return (w["dice"] * m["dice"] + w["mask"] * m["mask"]) / max(count, 1)
