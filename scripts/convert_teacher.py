"""Convert a TFLite teacher to ONNX and check it against TFLite's own interpreter on a real frame.

Runs in the conversion venv (tensorflow-cpu + tf2onnx + onnxruntime + opencv; never the project venv):

    python scripts/convert_teacher.py --tflite ssd.tflite --onnx out.onnx --image frame.png \
        --input-scale 0.00784313725490196 --input-offset -1 [--tolerance 1e-3]

Writes ``out.onnx`` only when every output of the ONNX graph matches TFLite's within ``tolerance``
(largest absolute difference) on the image, and a JSON report next to it (``<out>.parity.json``).
Data-preparation time only.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tflite", required=True)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--image", required=True, help="a real frame to compare the two runtimes on")
    parser.add_argument("--input-scale", type=float, default=1.0)
    parser.add_argument("--input-offset", type=float, default=0.0)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()

    import onnxruntime as ort
    import tensorflow as tf

    out = Path(args.onnx)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        candidate = Path(tmp) / out.name
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", args.tflite, "--output",
                        str(candidate), "--opset", str(args.opset)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        interpreter = tf.lite.Interpreter(args.tflite)
        interpreter.allocate_tensors()
        (inp,) = interpreter.get_input_details()
        _, height, width, _ = inp["shape"]
        image = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{args.image}: cannot read the image")
        rgb = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (int(width), int(height)), interpolation=cv2.INTER_AREA)
        x = (rgb.astype(np.float32) * args.input_scale + args.input_offset)[None]
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        expected = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
        session = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {session.get_inputs()[0].name: x})))
        report = {"tflite": args.tflite, "image": args.image, "tolerance": args.tolerance, "outputs": {}}
        ok = set(expected) == set(got)
        for name, value in expected.items():
            if name not in got:
                continue
            diff = float(np.abs(value - got[name]).max())
            report["outputs"][name] = {"shape": list(value.shape), "max_abs_diff": diff,
                                       "max_abs_value": float(np.abs(value).max())}
            ok &= diff <= args.tolerance
        report["match"] = bool(ok)
        Path(f"{out}.parity.json").write_text(json.dumps(report, indent=1))
        print(json.dumps(report, indent=1))
        if not ok:
            print(f"ONNX conversion of {args.tflite} does not match TFLite: not written", file=sys.stderr)
            return 1
        candidate.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
