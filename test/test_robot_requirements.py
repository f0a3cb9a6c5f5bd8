"""The robot-side pins (requirements/ros.txt + robot.txt + robot-no-deps.txt, what `make demo` installs) need
no torch and one OpenCV, the venv runs the pinned OpenCV, and the non-ROS pins install on aarch64 from wheels."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements"
TORCH = {"torch", "torchvision", "triton"}
# Wheels for glibc 2.28 and newer: Debian 10+, Ubuntu 20.04+ on 64-bit ARM boards.
AARCH64_PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 29))]


def _pins(name: str) -> dict[str, str]:
    """{canonical name: version} of one requirements file's `name==version` lines."""
    lines = (line.split("#")[0].strip() for line in (REQUIREMENTS / name).read_text().splitlines())
    return {canonicalize_name(pin.split("==")[0]): pin.split("==")[1] for pin in lines if pin}


def _installed_closure(pins: dict[str, str]) -> dict[str, str]:
    """{name: version} of the installed distributions that ``pins`` need, their dependencies (and requested
    extras) followed through the installed metadata, which is what pip resolved for them."""
    found: dict[str, str] = {}
    followed: set[tuple[str, str]] = set()
    pending = [Requirement(f"{name}=={version}") for name, version in pins.items()]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise AssertionError(f"{requirement}, needed by the robot side, is not installed") from None
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement}, {version} installed"
        found[name] = version
        for extra in {"", *requirement.extras} - {e for n, e in followed if n == name}:
            followed.add((name, extra))
            pending += [dependency for dependency in map(Requirement, metadata.requires(name) or [])
                        if _applies(dependency, extra)]
    return found


def _applies(dependency: Requirement, extra: str) -> bool:
    """Whether a dependency of a distribution's base ("") or of one of its extras applies to this interpreter."""
    if dependency.marker is None:
        return not extra
    return dependency.marker.evaluate({"extra": extra})


def _opencv(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith("opencv-")}


def test_robot_side_needs_no_torch_and_one_opencv() -> None:
    closure = _installed_closure(_pins("ros.txt") | _pins("robot.txt"))
    names = set(closure) | set(_pins("robot-no-deps.txt"))
    assert not names & TORCH and not any(name.startswith("nvidia-") for name in names), sorted(names)
    assert _opencv(names) == {"opencv-python-headless"}
    assert {"numpy", "onnxruntime", "ros-rclpy", "rosbags", "trackeval"} <= names


def test_the_venv_runs_the_pinned_opencv() -> None:
    import cv2

    owners = {canonicalize_name(owner) for owner in metadata.packages_distributions()["cv2"]}
    assert owners == {"opencv-python-headless"}, "another package also installs cv2"
    pinned = _pins("robot.txt")["opencv-python-headless"]
    assert metadata.version("opencv-python-headless") == pinned
    assert pinned.startswith(cv2.__version__ + ".")


def _resolve_for_aarch64(requirements: str, tmp_path: Path, *options: str) -> set[str]:
    """Names of what pip would install from ``requirements`` on an aarch64 board, binary wheels only."""
    report = tmp_path / f"{requirements}.json"
    platforms = [arg for platform in AARCH64_PLATFORMS for arg in ("--platform", platform)]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--only-binary=:all:",
         *platforms, "--python-version", python, "--implementation", "cp", "--target", str(tmp_path / "target"),
         "--report", str(report), "-r", str(REQUIREMENTS / requirements), *options],
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    return {canonicalize_name(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}


def test_robot_pins_install_on_aarch64_from_wheels(tmp_path: Path) -> None:
    """What a ROS robot installs with pip (README "On a robot"), resolved by pip from the registries."""
    names = _resolve_for_aarch64("robot.txt", tmp_path)
    assert set(_pins("robot.txt")) <= names
    assert not names & TORCH and _opencv(names) == {"opencv-python-headless"}, sorted(names)
    assert _resolve_for_aarch64("robot-no-deps.txt", tmp_path, "--no-deps") == set(_pins("robot-no-deps.txt"))
