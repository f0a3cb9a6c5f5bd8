"""The robot side (runtime/, tracking/, node/, messages/, geometry/, replay/, evaluation/, and the dataset
reader, bag writer and node benchmark that use them) imports and runs a model without torch, not even
indirectly; `make demo`'s program runs end to end where torch cannot be imported at all."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from node_harness import ROOT
from oracle_model import export_oracle

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from mobileinst_ros.runtime.engine import Engine
    from mobileinst_ros.tracking.tracker import KernelTracker
    import importlib, pkgutil
    import mobileinst_ros
    # Every module of the robot side's packages, and its single modules.
    for package in ("runtime", "tracking", "node", "messages", "geometry", "replay", "evaluation", "autolabel"):
        path = [f"{mobileinst_ros.__path__[0]}/{package}"]
        for info in pkgutil.walk_packages(path, f"mobileinst_ros.{package}."):
            importlib.import_module(info.name)
    for name in ("masks", "overlay", "data.ytvis", "data.bags", "data.synth", "bench.node_overhead"):
        importlib.import_module(f"mobileinst_ros.{name}")
    tracker = KernelTracker(Engine(sys.argv[1]), keyframe_interval=2)
    image = np.full((64, 64, 3), 127, np.uint8)
    image[8:40, 8:40] = (255, 0, 0)
    frames = [tracker.process(image) for _ in range(3)]
    assert [len(f.instances) for f in frames] == [1, 1, 1], frames
    loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    print("TORCH_MODULES", loaded)
""")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return export_oracle(tmp_path_factory.mktemp("oracle") / "model", [(64, 64)])


def test_robot_side_never_imports_torch(model_dir):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(model_dir)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "TORCH_MODULES []" in result.stdout


def test_demo_runs_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    # A `torch` package that fails on import, first on every process's path (the demo's node, player and
    # recorder inherit the environment): as on a robot-side venv, which has no torch.
    blocker = tmp_path / "no_torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("torch is not part of the robot side")\n')
    paths = [str(blocker.parent), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in paths if path))
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "mobileinst_ros.replay.demo", "--out", str(out), "--frames", "6"],
                            capture_output=True, text=True, timeout=180, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_in"] == 6 and summary["frames_processed"] > 0
