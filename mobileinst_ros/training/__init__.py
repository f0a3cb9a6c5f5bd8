"""Training: ``mobileinst-train`` (train.py), the training step, video inference for validation."""
