"""MobileInst in PyTorch: backbone, mask decoder, instance decoder, matcher, criterion (post-processing: runtime/)."""
from .mobileinst import DEFAULT_MODEL_CONFIG, MobileInst, build_model, compute_masks, count_parameters, normalize_images

__all__ = ["DEFAULT_MODEL_CONFIG", "MobileInst", "build_model", "compute_masks", "count_parameters",
           "normalize_images"]
