"""``TorchEngine``: the robot's ``runtime.Engine`` with its graphs run by a torch MobileInst.

Validation during training runs what the robot runs (pre-processing, query scores rescored by
maskness, mask warping, ``tracking.KernelTracker``); only the network comes from torch instead of
onnxruntime. The graphs are the exporter's own wrappers (``export._wrappers``: shallow, deep,
mask_decoder, instance_decoder with ``runtime.model_dir.GRAPH_IO``'s tensor names), so validation AP
and ``mobileinst-eval`` AP of the exported model differ only by ONNX-vs-torch numerics (~1e-5).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..export.export import _wrappers, wrapper_inputs
from ..runtime.engine import Engine, _check_finite
from ..runtime.model_dir import GRAPH_IO, MODEL_DEFAULTS, ModelSpec
from ..model.mobileinst import MobileInst

__all__ = ["TorchEngine"]


class _TorchGraph:
    """One graph role of the model, called like the engine's onnxruntime graphs: numpy in and out."""

    def __init__(self, module: nn.Module, role: str):
        self.module, self.role = module, role
        self.inputs, self.outputs = wrapper_inputs(module, role), GRAPH_IO[role][1]
        self.image_channels = 3  # the exporter's RGB input
        self.any_size = True  # torch takes any input size, as the shared-shape export does

    @torch.no_grad()
    def run(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        device = next(self.module.parameters()).device
        values = self.module(*(torch.from_numpy(feeds[name]).to(device) for name in self.inputs))
        values = (values,) if isinstance(values, torch.Tensor) else values
        outputs = {name: v.float().cpu().numpy() for name, v in zip(self.outputs, values)}
        _check_finite(outputs, f"torch {self.role}")
        return outputs


class TorchEngine(Engine):
    """``Engine`` on a torch model (put in eval mode here; call ``model.train()`` again after use).

    ``resolutions``: model input sizes (w, h) to choose from per image, as the exported ones;
    thresholds as ``Engine``'s (defaults: ``runtime.model_dir.MODEL_DEFAULTS``). Normalisation is the
    model's, (rgb - 127) / 128, done by the shallow graph's wrapper as in the exported graph."""

    def __init__(self, model: MobileInst, class_names: list[str], resolutions: list[tuple[int, int]],
                 threads: int | None = None, score_threshold: float | None = None,
                 mask_threshold: float | None = None, max_instances: int | None = None,
                 duplicate_iou: float | None = None, split_components: bool | None = None,
                 resize: str | None = None) -> None:
        self.model = model.eval()
        self._torch_graphs = {role: _TorchGraph(module, role) for role, module in _wrappers(model).items()}
        decoder = model.instance_decoder
        location_terms = model.mask_decoder.location_terms
        spec = ModelSpec(root=Path("<torch model>"), classes=list(class_names), mean=127.0, scale=128.0,
                         mask_stride=8, kernel_dim=decoder.local_heads.kernel[-1].out_features + location_terms,
                         num_queries=decoder.num_queries, defaults=dict(MODEL_DEFAULTS),
                         graphs={(int(w), int(h)): {"fp32": {}} for w, h in resolutions}, raw={},
                         location_terms=location_terms)
        super().__init__(spec, threads=threads or torch.get_num_threads(), score_threshold=score_threshold,
                         mask_threshold=mask_threshold, max_instances=max_instances, duplicate_iou=duplicate_iou,
                         split_components=split_components, resize=resize)

    def _load_graphs(self, resolution: tuple[int, int], precision: str) -> dict[str, _TorchGraph]:
        return self._torch_graphs
