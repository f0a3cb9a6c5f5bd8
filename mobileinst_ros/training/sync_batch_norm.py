"""BatchNorm whose batch statistics span every training process, on CPUs too.

``mobileinst-train --processes N`` gives each process 1/N of the batch. Plain BatchNorm then normalises with the
statistics of that share only, and a shapes run so ended 7-8 AP below its one-process control
(docs/training.md); torch's ``nn.SyncBatchNorm`` runs on GPUs only. ``SyncBatchNorm2d`` sums each channel's
count, sum and sum of squares over the processes with an autograd-aware all_reduce, so that the backward pass
sums the statistics' gradients as well: N processes compute what one process computes on the whole batch.

It synchronises only inside ``synchronized(model)``, which the training step enters on every process at
once; everywhere else (rank 0's PreciseBN and validation, export, a single process) it is BatchNorm2d, and its
state dict is BatchNorm2d's.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

__all__ = ["SyncBatchNorm2d", "average_count", "convert_batch_norms", "mean_over_processes", "synchronized"]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with statistics over all processes while ``synchronizing`` (``synchronized``)."""

    synchronizing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x[B,C,H,W] -> normalised x[B,C,H,W]; the running statistics follow the global batch's."""
        if not (self.training and self.track_running_stats and self.synchronizing and _distributed()):
            return super().forward(x)
        var, mean = torch.var_mean(x.float(), dim=(0, 2, 3), unbiased=False)  # stable per process
        n = x.numel() / x.shape[1]
        # float64 for the combination: sum(x^2)/N - mean^2 cancels where the mean dwarfs the spread
        local = torch.cat([mean.double() * n, (var.double() + mean.double() ** 2) * n, mean.new_full((1,), n).double()])
        total = dist_nn.all_reduce(local)
        count = total[-1]
        c = x.shape[1]
        global_mean = total[:c] / count
        global_var = (total[c:2 * c] / count - global_mean ** 2).clamp(min=0)
        self._update_running_stats(global_mean.detach(), global_var.detach(), count.item())
        scale = torch.rsqrt(global_var.float() + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = -global_mean.float() * scale + (self.bias if self.affine else 0.0)
        return x * scale.view(1, c, 1, 1).to(x.dtype) + shift.view(1, c, 1, 1).to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        """As BatchNorm2d: exponential (or with momentum None cumulative) averages, the variance unbiased."""
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_((var * count / max(count - 1, 1)).to(self.running_var.dtype), momentum)


def convert_batch_norms(module: nn.Module) -> nn.Module:
    """Every BatchNorm2d of ``module`` replaced by a SyncBatchNorm2d with its parameters and statistics
    (in place for children; returns the module, or its replacement when it is itself a BatchNorm2d)."""
    if type(module) is nn.BatchNorm2d:
        synced = SyncBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats).to(module.weight.device)
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        for p, q in zip(module.parameters(), synced.parameters()):
            q.requires_grad_(p.requires_grad)
        return synced
    for name, child in module.named_children():
        setattr(module, name, convert_batch_norms(child))
    return module


@contextlib.contextmanager
def synchronized(module: nn.Module) -> Iterator[None]:
    """Inside the block the SyncBatchNorm2d layers of ``module`` synchronise (every process must enter it)."""
    layers = [m for m in module.modules() if isinstance(m, SyncBatchNorm2d)]
    for m in layers:
        m.synchronizing = True
    try:
        yield
    finally:
        for m in layers:
            m.synchronizing = False


def mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged element-wise over the training processes (themselves with one process)."""
    if not _distributed():
        return values
    total = values.clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def average_count(count: float) -> float:
    """A count averaged over the training processes: the loss normaliser that makes N processes' averaged
    gradients those of one process on the whole batch (DETR's num_boxes)."""
    return float(mean_over_processes(torch.tensor([float(count)], dtype=torch.float64)))
