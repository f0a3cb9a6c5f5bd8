"""The project venv imports the package's modules from this checkout (edits take effect without a
rebuild) and its messages from the CMake install, from any working directory."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_modules_come_from_the_checkout_and_messages_from_the_install(tmp_path: Path) -> None:
    probe = ("import mobileinst_ros.runtime.engine as engine, mobileinst_ros.msg as msg; "
             "print(engine.__file__); print(msg.__file__)")
    lines = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, check=True, capture_output=True,
                           text=True).stdout.splitlines()
    engine_file, msg_file = (Path(line) for line in lines)
    assert engine_file == REPO / "mobileinst_ros" / "runtime" / "engine.py"
    assert Path(sys.prefix) in msg_file.parents
