"""What the Engine's size-fixed sessions (``runtime/engine.py: _SIZE_FIXED_ROLES``) buy, on one core.

    taskset -c 1 .venv/bin/python scripts/size_fixed_sessions.py MODEL [--precision int8] [--rounds 5]

1. Per graph: each graph's feeds from a vtest.avi frame through the file's any-size session and through a session
   with every input size fixed (onnxruntime free-dimension overrides), interleaved; CPU-time medians, max difference.
2. Whole path: an Engine with the size-fixed sessions against one without, interleaved in rounds over 30 frames
   (frame 600 on): keyframe (prepare, backbone, mask decoder, instance decoder, selection) and non-keyframe
   (shallow graph, reused mask decoder, masks of the keyframe's kernels), CPU-time medians.
"""
import argparse
import time

import cv2
import numpy as np
import onnxruntime as ort

import mobileinst_ros.runtime.engine as engine_module
from mobileinst_ros.runtime.engine import Engine

VIDEO = "data_cache/footage/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def read_frames(count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(VIDEO)
    cap.set(cv2.CAP_PROP_POS_FRAMES, 600)
    return [cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB) for _ in range(count)]


def cpu_ms(fn) -> float:
    start = time.process_time()
    fn()
    return 1000 * (time.process_time() - start)


def per_graph(model: str, precision: str, frame: np.ndarray, runs: int) -> None:
    engine = Engine(model, resolution="640x480", precision=precision)
    graphs = engine._graphs[(640, 480)]
    feeds = {}

    def recording(role: str, run):
        def run_and_record(**feed: np.ndarray) -> dict:
            feeds.setdefault(role, feed)
            return run(**feed)
        return run_and_record

    for role, graph in graphs.items():  # record each graph's feeds on one keyframe and one non-keyframe
        graph.run = recording(role, graph.run)
    prepared = engine.prepare(frame)
    features = engine.keyframe_features(prepared)
    engine.decode(features)
    engine.reuse_features(prepared, features)
    for role, graph in graphs.items():
        options = engine._session_options(1)
        for tensor in graph.session.get_inputs():
            for dim, size in zip(tensor.shape, feeds[role][tensor.name].shape):
                if isinstance(dim, str):
                    options.add_free_dimension_override_by_name(dim, size)
        fixed = ort.InferenceSession(str(graph.path), options, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in graph.session.get_outputs()]
        diff = max(float(np.abs(a - b).max()) for a, b in zip(graph.session.run(outputs, feeds[role]),
                                                               fixed.run(outputs, feeds[role])))
        times = np.array([(cpu_ms(lambda: graph.session.run(outputs, feeds[role])),
                           cpu_ms(lambda: fixed.run(outputs, feeds[role]))) for _ in range(runs)])
        any_size, sized = np.median(times, axis=0)
        print(f"{role:20s} any-size {any_size:6.2f} ms  fixed {sized:6.2f} ms  ratio {sized / any_size:.3f}  "
              f"max diff {diff:.1e}")


def whole_path(model: str, precision: str, frames: list[np.ndarray], rounds: int) -> None:
    roles = engine_module._SIZE_FIXED_ROLES
    engines = {"fixed": Engine(model, resolution="640x480", precision=precision),
               "any-size": Engine(model, resolution="640x480", precision=precision)}

    def frame_times(engine: Engine) -> tuple[float, float]:
        key, non = [], []
        for image in frames:
            state = {}

            def keyframe():
                state["p"] = engine.prepare(image)
                state["f"] = engine.keyframe_features(state["p"])
                state["d"] = engine.detect(state["f"], state["p"].geometry)

            def non_keyframe():
                reused = engine.reuse_features(state["p"], state["f"])
                engine.reuse_masks(state["d"].kernels, reused, state["p"].geometry)

            key.append(cpu_ms(keyframe))
            non.append(cpu_ms(non_keyframe))
        return float(np.median(key)), float(np.median(non))

    results = {name: [] for name in engines}
    for _ in range(rounds):
        for name, engine in engines.items():
            engine_module._SIZE_FIXED_ROLES = roles if name == "fixed" else frozenset()
            results[name].append(frame_times(engine))
    engine_module._SIZE_FIXED_ROLES = roles
    medians = {name: np.median(values, axis=0) for name, values in results.items()}
    for name, (key, non) in medians.items():
        print(f"{name:9s} keyframe {key:6.2f} ms, non-keyframe {non:6.2f} ms")
    ratio = medians["fixed"] / medians["any-size"]
    print(f"fixed / any-size: keyframe {ratio[0]:.3f}, non-keyframe {ratio[1]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--runs", type=int, default=40, help="runs per graph")
    parser.add_argument("--rounds", type=int, default=5, help="whole-path rounds of 30 frames")
    args = parser.parse_args()
    frames = read_frames(30)
    per_graph(args.model, args.precision, frames[0], args.runs)
    whole_path(args.model, args.precision, frames, args.rounds)


if __name__ == "__main__":
    main()
