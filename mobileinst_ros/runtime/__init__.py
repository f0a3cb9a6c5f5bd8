"""Robot-side inference: onnxruntime engine, pre- and post-processing (numpy + OpenCV, never torch)."""
