"""The package builds in a colcon workspace, as on a robot, and imports from its install space."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the tracked sources with `colcon build --packages-select mobileinst_ros`."""
    workspace = tmp_path_factory.mktemp("ros2_ws")
    package = workspace / "src" / "mobileinst_ros"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    for relative in tracked.splitlines():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, package / relative)
    venv = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv))
    build = subprocess.run(
        [str(venv / "bin" / "colcon"), "build", "--packages-select", "mobileinst_ros",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return workspace / "install" / "mobileinst_ros"


def test_messages_and_modules_import_from_the_install_space(colcon_install: Path, tmp_path: Path) -> None:
    site_packages = next(colcon_install.glob("lib/python3*/site-packages"))
    probe = ("import mobileinst_ros.msg as m, mobileinst_ros.masks as k, mobileinst_ros.messages.instances;"
             "print(m.InstanceArray.__module__, k.__file__)")
    env = dict(os.environ, PYTHONPATH=str(site_packages))
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout
    assert str(site_packages) in out  # not the source checkout


def test_ros2_run_executable_and_share_files_are_installed(colcon_install: Path) -> None:
    executable = colcon_install / "lib" / "mobileinst_ros" / "mobileinst_node"
    assert executable.is_file() and os.access(executable, os.X_OK)
    share = colcon_install / "share" / "mobileinst_ros"
    for name in ("package.xml", "msg/Instance.msg", "msg/InstanceArray.msg", "msg/ModelInfo.msg"):
        assert (share / name).is_file(), name
