"""Robot-side tracking by kernels: keyframes, kernel and feature reuse, association (never torch)."""
