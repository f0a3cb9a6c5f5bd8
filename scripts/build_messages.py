#!/usr/bin/env python3
"""Build msg/ with CMake against the PyPI ROS 2 wheels and install it into the running venv.

Run with the venv's python (`make venv` does). The wheels' exported CMake files hard-code the
interpreter they were built with (/opt/python/cpXY-cpXY/...); they are rewritten to this venv's
include directories first, else the generated Python extension fails to configure.

Only the messages and ``__init__.py`` are installed (``-DMOBILEINST_INSTALL_MODULES=OFF``): the venv
imports the package's modules from this checkout through ``__init__``'s extended package path.
Copies left by an earlier install would shadow the source, so they are removed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / "build" / "venv_cmake"
WHEEL_PYTHON_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+/include/python\d+\.\d+")
WHEEL_NUMPY_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+/lib/python\d+\.\d+/site-packages/numpy/_core/include")


def rewrite_wheel_cmake_paths(prefix: Path) -> int:
    """Point the wheels' exported CMake files at this venv's Python and numpy headers."""
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    rewritten = 0
    for cmake_file in (prefix / "share").rglob("*.cmake"):
        text = cmake_file.read_text()
        fixed = WHEEL_NUMPY_INCLUDE.sub(numpy_include, WHEEL_PYTHON_INCLUDE.sub(python_include, text))
        if fixed != text:
            cmake_file.write_text(fixed)
            rewritten += 1
    return rewritten


def remove_installed_modules(prefix: Path) -> list[str]:
    """Delete installed copies of the checkout's own modules (not msg/ or the typesupport libraries)."""
    installed = Path(sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["purelib"]) / "mobileinst_ros"
    source = REPO / "mobileinst_ros"
    removed = []
    for entry in sorted(source.iterdir()):
        copy = installed / entry.name
        if entry.name in ("__init__.py", "msg", "__pycache__") or not copy.exists():
            continue
        shutil.rmtree(copy) if copy.is_dir() else copy.unlink()
        removed.append(entry.name)
    return removed


def run(cmd: list[str], env: dict[str, str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def main() -> int:
    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        print("build_messages.py: run me with the project venv's python", file=sys.stderr)
        return 2
    print(f"rewrote interpreter paths in {rewrite_wheel_cmake_paths(prefix)} wheel CMake files")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix))
    cmake = str(prefix / "bin" / "cmake")
    run([cmake, "-S", str(REPO), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPython3_EXECUTABLE={sys.executable}",
         "-DBUILD_TESTING=OFF", "-DMOBILEINST_INSTALL_MODULES=OFF", "-Wno-dev"], env)
    run([cmake, "--build", str(BUILD_DIR), "-j", str(os.cpu_count() or 1)], env)
    run([cmake, "--install", str(BUILD_DIR)], env)
    removed = remove_installed_modules(prefix)
    if removed:
        print(f"removed installed copies of {', '.join(removed)} (the venv imports the checkout's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
