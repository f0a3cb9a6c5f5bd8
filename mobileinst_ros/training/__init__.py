"""Training: ``mobileinst-train`` (train.py), the training step, validation through ``TorchEngine``."""
import os

# Idle OpenMP threads sleep instead of spinning. On a small CPU shared with other jobs, spinning
# threads of a 2-thread pool stall each other: measured 3.6-4.3 s/step passive vs 7-30 s/step
# active at 256x256 under load. Must be set before torch starts its thread pool, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
