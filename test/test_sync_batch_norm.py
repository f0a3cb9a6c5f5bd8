"""SyncBatchNorm2d: two processes, each with half the batch, compute what one BatchNorm2d computes on all of it."""
import copy
import os
import subprocess
import sys
import textwrap

import torch
from torch import nn

from mobileinst_ros.training.sync_batch_norm import SyncBatchNorm2d, convert_batch_norms, synchronized

WORKER = textwrap.dedent("""
    import os, sys, torch
    import torch.distributed as dist
    from mobileinst_ros.training.sync_batch_norm import SyncBatchNorm2d, synchronized

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    data = torch.load(sys.argv[1])
    x = data["x"].chunk(2)[rank].clone().requires_grad_(True)
    bn = SyncBatchNorm2d(3, momentum=0.5)
    bn.load_state_dict(data["state"])
    with synchronized(bn):
        y = bn(x)
        (y * data["w"].chunk(2)[rank]).sum().backward()
    dist.all_reduce(bn.weight.grad)  # what DDP does with parameter gradients (it then divides)
    dist.all_reduce(bn.bias.grad)
    torch.save({"y": y.detach(), "x_grad": x.grad, "weight_grad": bn.weight.grad, "bias_grad": bn.bias.grad,
                "running_mean": bn.running_mean, "running_var": bn.running_var},
               os.path.join(sys.argv[2], f"rank{rank}.pt"))
    dist.destroy_process_group()
""")


def _reference(x: torch.Tensor, w: torch.Tensor, state: dict) -> dict:
    bn = nn.BatchNorm2d(3, momentum=0.5)
    bn.load_state_dict(state)
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * w).sum().backward()
    return {"y": y.detach(), "x_grad": x.grad, "weight_grad": bn.weight.grad, "bias_grad": bn.bias.grad,
            "running_mean": bn.running_mean, "running_var": bn.running_var}


def test_two_processes_normalise_over_the_whole_batch(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6) * torch.tensor([1.0, 10.0, 0.1]).view(1, 3, 1, 1) + torch.tensor([0.0, 30.0, -2.0]).view(1, 3, 1, 1)
    x[:2] += 1.5  # the two halves differ: per-process statistics would not do
    w = torch.randn(4, 3, 5, 6)
    state = nn.BatchNorm2d(3).state_dict()
    state["weight"], state["bias"] = torch.tensor([1.0, 0.5, 2.0]), torch.tensor([0.1, -0.2, 0.3])
    torch.save({"x": x, "w": w, "state": state}, tmp_path / "data.pt")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path / "data.pt"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    want = _reference(x, w, state)
    for key in ("y", "x_grad"):
        torch.testing.assert_close(torch.cat([r[key] for r in ranks]), want[key], rtol=1e-4, atol=1e-5)
    for key in ("weight_grad", "bias_grad", "running_mean", "running_var"):
        for r in ranks:
            torch.testing.assert_close(r[key], want[key], rtol=1e-4, atol=1e-5)
    half = nn.BatchNorm2d(3)
    half.load_state_dict(state)
    assert not torch.allclose(half(x[:2]), want["y"][:2], atol=1e-2)  # what one process alone would compute


def test_without_processes_it_is_batch_norm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    model[1].running_mean.fill_(0.3)
    reference = copy.deepcopy(model)
    converted = convert_batch_norms(model)
    assert sum(isinstance(m, SyncBatchNorm2d) for m in converted.modules()) == 2
    state, want_state = converted.state_dict(), reference.state_dict()
    assert list(state) == list(want_state) and all(torch.equal(state[k], want_state[k]) for k in state)
    x = torch.randn(2, 3, 8, 8)
    with synchronized(converted):  # no process group: plain BatchNorm, running statistics included
        torch.testing.assert_close(converted(x), reference(x))
    torch.testing.assert_close(converted[2][0].running_var, reference[2][0].running_var)
