"""Video inference in torch for validation: keyframes + kernel reuse, as the robot runtime does.

On a keyframe (every ``keyframe_interval`` frames) the whole network runs; its best queries are
associated to the running tracks by cosine similarity of their mask kernels (Hungarian, same class,
similarity above ``association_threshold``), the rest start new tracks. Other frames run only the
shallow backbone and the mask decoder, reusing the keyframe's X4/X5/X6, and mask every active track
with its kernel. Output: YouTube-VIS result entries for ``evaluation.vis_ap.youtube_vis_ap``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

from ..data.transforms import resize_for_model
from ..data.ytvis import VideoDataset
from ..evaluation.vis_ap import youtube_vis_ap
from ..model.mobileinst import MobileInst, compute_masks, normalize_images
from ..model.postprocess import instance_scores

__all__ = ["predict_video", "predict_dataset", "evaluate_dataset"]


@dataclass
class _Track:
    label: int
    kernel: torch.Tensor  # [K]
    scores: list[float] = field(default_factory=list)
    masks: dict[int, np.ndarray] = field(default_factory=dict)


def _associate(tracks: list[_Track], kernels: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[int, int]:
    """candidate index -> track index, by Hungarian matching on kernel cosine similarity."""
    if not tracks or kernels.numel() == 0:
        return {}
    kernels, labels = kernels.cpu(), labels.cpu()
    sim = F.normalize(kernels, dim=1) @ F.normalize(torch.stack([t.kernel.cpu() for t in tracks]), dim=1).T
    same = labels[:, None] == torch.tensor([t.label for t in tracks])[None]
    sim = torch.where(same, sim, torch.full_like(sim, -1.0))
    rows, cols = linear_sum_assignment(-sim.numpy())
    return {int(r): int(c) for r, c in zip(rows, cols) if sim[r, c] >= threshold}


@torch.no_grad()
def predict_video(model: MobileInst, frames: list[np.ndarray], input_size: tuple[int, int], keyframe_interval: int = 3,
                  top_k: int = 10, score_threshold: float = 0.05, mask_threshold: float = 0.5,
                  association_threshold: float = 0.5) -> list[dict]:
    """RGB uint8 frames [H,W,3] -> tracks ``{label, score, masks: [bool HxW or None per frame]}``."""
    model.eval()
    device = next(model.parameters()).device
    height, width = frames[0].shape[:2]
    tracks: list[_Track] = []
    active: list[_Track] = []
    deep = None
    for f, frame in enumerate(frames):
        image = torch.from_numpy(resize_for_model(frame, input_size)).permute(2, 0, 1)[None].to(device)
        x3 = model.backbone.forward_shallow(normalize_images(image))
        keyframe = f % keyframe_interval == 0
        if keyframe:
            deep = model.backbone.forward_deep(x3)
        mask_features = model.mask_decoder(x3, *deep)
        if keyframe:
            out = model.instance_decoder(deep[2], mask_features)
            scores, labels = instance_scores(out["logits"][0], out["objectness"][0])
            order = torch.argsort(scores, descending=True)[:top_k]
            order = order[scores[order] >= score_threshold]
            kernels = out["kernels"][0][order]
            matches = _associate(tracks, kernels, labels[order], association_threshold)
            active = []
            for c in range(len(order)):
                if c in matches:
                    track = tracks[matches[c]]
                    track.kernel = kernels[c]
                else:
                    track = _Track(int(labels[order[c]]), kernels[c])
                    tracks.append(track)
                track.scores.append(float(scores[order[c]]))
                active.append(track)
        if not active:
            continue
        logits = compute_masks(torch.stack([t.kernel for t in active])[None], mask_features)
        probs = torch.sigmoid(F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False))[0].cpu()
        binary = probs > mask_threshold
        for track, p, m in zip(active, probs, binary):
            if keyframe:  # mask-score rescoring, as post-processing does
                track.scores[-1] *= float((p * m).sum() / m.sum().clamp(min=1))
            if m.any():
                track.masks[f] = m.numpy()
    return [{"label": t.label, "score": float(np.mean(t.scores)),
             "masks": [t.masks.get(f) for f in range(len(frames))]} for t in tracks if t.masks]


def _rle(mask: np.ndarray | None) -> dict | None:
    if mask is None:
        return None
    enc = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    enc["counts"] = enc["counts"].decode("ascii")
    return enc


def predict_dataset(model: MobileInst, dataset: VideoDataset, input_size: tuple[int, int],
                    video_indices: list[int], **kwargs) -> list[dict]:
    """YouTube-VIS result entries ``{video_id, category_id, score, segmentations}`` for some videos."""
    results = []
    for vi in video_indices:
        video = dataset.videos[vi]
        frames = [dataset.frame(vi, f) for f in range(video.length)]
        for track in predict_video(model, frames, input_size, **kwargs):
            results.append({"video_id": video.id, "category_id": dataset.category_ids[track["label"]],
                            "score": track["score"], "segmentations": [_rle(m) for m in track["masks"]]})
    return results


def dataset_ground_truth(dataset: VideoDataset, video_indices: list[int]) -> dict:
    """YouTube-VIS ground truth dict for a subset of a loaded dataset."""
    videos, annotations = [], []
    for vi in video_indices:
        v = dataset.videos[vi]
        videos.append({"id": v.id, "height": v.height, "width": v.width, "length": v.length,
                       "file_names": [str(p) for p in v.frame_paths]})
        for inst in v.instances:
            annotations.append({"id": inst.id, "video_id": v.id, "category_id": dataset.category_ids[inst.label],
                                "iscrowd": 0, "segmentations": inst.rles})
    categories = [{"id": cid, "name": name} for cid, name in zip(dataset.category_ids, dataset.classes)]
    return {"videos": videos, "annotations": annotations, "categories": categories}


def evaluate_dataset(model: MobileInst, dataset: VideoDataset, input_size: tuple[int, int],
                     max_videos: int | None = None, **kwargs) -> dict:
    """YouTube-VIS AP of the model on the first ``max_videos`` annotated videos of ``dataset``."""
    indices = [i for i, v in enumerate(dataset.videos) if v.instances][:max_videos]
    predictions = predict_dataset(model, dataset, input_size, indices, **kwargs)
    return youtube_vis_ap(dataset_ground_truth(dataset, indices), predictions)
