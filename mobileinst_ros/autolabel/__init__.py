"""``mobileinst-autolabel``: unlabelled video plus a teacher (an ONNX detector with a YAML spec) gives a
YouTube-VIS dataset that ``mobileinst-train`` reads unchanged. Torch-free: onnxruntime, OpenCV, numpy, scipy.

teacher.py (spec, ONNX run, box decoding) -> sources.py (bags, videos, images) -> label.py (cache, tracks.py
linking, box_masks.py GrabCut) -> writer.py (temporary directory, then rename); copy_paste.py multiplies
labelled scenes; quality.py measures box-seeded masks against exact ground truth; cli.py is the command.
"""
