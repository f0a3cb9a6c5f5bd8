"""Training samples: pairs of frames (t, t+d) from one clip, augmented alike, as torch tensors.

A sample is ``{"images": uint8[2,3,H,W], "targets": [frame_t, frame_t+d]}`` with each target
``{"labels": long[M], "masks": float[M,H,W], "ids": long[M]}`` holding the instances visible after
augmentation; ``ids`` are the dataset's annotation ids, so the two frames' instances correspond.
One-frame videos (COCO) give the same frame twice.
"""
from __future__ import annotations

import numpy as np
import torch

from .transforms import ClipAugment
from .ytvis import VideoDataset

__all__ = ["ClipPairDataset", "collate_pairs"]


class ClipPairDataset(torch.utils.data.Dataset):
    """Index ``i`` -> a deterministic random frame pair (seeded by ``(seed, i)``).

    Indices past ``len`` are welcome: ``i // V`` picks an epoch whose own permutation orders the V
    videos, so consecutive indices (``range(step * batch, ...)``) sweep the videos in shuffled
    epochs, reproducibly, and training resumes where it stopped.
    """

    def __init__(self, dataset: VideoDataset, augment: ClipAugment, max_gap: int = 3, seed: int = 0):
        if max_gap < 1:
            raise ValueError(f"max_gap must be >= 1, got {max_gap}")
        self.dataset, self.augment, self.max_gap, self.seed = dataset, augment, max_gap, seed
        # videos without any instance teach nothing to the matcher; keep them out of the pairs
        self.video_indices = [i for i, v in enumerate(dataset.videos) if v.instances]
        if not self.video_indices:
            raise ValueError(f"{dataset.source}: no video has an annotated instance")

    def __len__(self) -> int:
        return len(self.video_indices)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        epoch, position = divmod(index, len(self.video_indices))
        order = np.random.default_rng((self.seed, epoch, 1)).permutation(len(self.video_indices))
        vi = self.video_indices[order[position]]
        video = self.dataset.videos[vi]
        gap = int(rng.integers(1, self.max_gap + 1)) if video.length > 1 else 0
        gap = min(gap, video.length - 1)
        t = int(rng.integers(0, video.length - gap))
        params = self.augment.sample(rng, video.height, video.width)
        images, targets = [], []
        for f in (t, t + gap):
            images.append(self.augment.image(self.dataset.frame(vi, f), params))
            ids, labels, masks = self.dataset.targets(vi, f)
            masks = self.augment.masks(masks, params)
            keep = masks.any(axis=(1, 2))
            targets.append({"labels": torch.from_numpy(labels[keep]), "masks": torch.from_numpy(masks[keep]).float(),
                            "ids": torch.from_numpy(ids[keep])})
        return {"images": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), "targets": targets}


def collate_pairs(samples: list[dict]) -> dict:
    """-> {"images": uint8[B,2,3,H,W], "targets": [[frame_t, frame_t+d] per clip]}."""
    return {"images": torch.stack([s["images"] for s in samples]), "targets": [s["targets"] for s in samples]}
