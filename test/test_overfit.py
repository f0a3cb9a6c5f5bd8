"""A tiny overfit: on two short videos the full training loss falls well below where it starts."""
import torch

from mobileinst_ros.data.clips import ClipPairDataset, collate_pairs
from mobileinst_ros.data.transforms import ClipAugment
from mobileinst_ros.data.ytvis import load_ytvis
from mobileinst_ros.model import build_model, normalize_images
from mobileinst_ros.model.criterion import SetCriterion
from mobileinst_ros.model.matcher import HungarianMatcher
from mobileinst_ros.training.step import TrainStep
from tiny_ytvis import write_tiny_ytvis

torch.set_num_threads(1)
torch.set_flush_denormal(True)


def test_loss_falls_on_a_tiny_dataset(tmp_path):
    torch.manual_seed(0)
    ds = load_ytvis(write_tiny_ytvis(tmp_path))
    pairs = ClipPairDataset(ds, ClipAugment((64, 64), scale_range=(1.0, 1.0), flip_prob=0.0), max_gap=1)
    model = build_model({"instance_decoder": {"num_queries": 10}}, len(ds.classes))
    step = TrainStep(model, SetCriterion(HungarianMatcher()))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = collate_pairs([pairs[i] for i in range(2)])  # one fixed batch: pure memorisation
    images = normalize_images(batch["images"])
    history = []
    for i in range(40):
        losses = step(images, batch["targets"], reuse=i % 2 == 0)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        history.append({k: float(v) for k, v in losses.items()})
    first = sum(h["main"] for h in history[:3]) / 3
    last = sum(h["main"] for h in history[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    # single steps are noisy (0.447 vs 0.881 on one machine, just above half): compare 3-step means
    assert sum(h["main_dice"] for h in history[-3:]) / 3 < 0.6 * history[0]["main_dice"]
    assert sum(h["temporal"] for h in history[-3:]) / 3 < 0.5 * history[0]["temporal"]
