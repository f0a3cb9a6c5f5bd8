"""Torch side: ONNX export of the split MobileInst graphs and INT8 quantization."""
