"""mobileinst-bench: latency of MobileInst and peer heads on one CPU core."""
