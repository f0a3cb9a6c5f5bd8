"""launch/mobileinst.launch.py (read with ast: `launch` does not install here) refers only to things
that exist and that the CMake build installs, and config/mobileinst.yaml holds valid parameters."""
import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from rclpy.parameter import Parameter

from mobileinst_ros.node import mobileinst_node
from mobileinst_ros.node.parameters import SPEC_BY_NAME, check_value

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "mobileinst.launch.py"
CMAKE = (ROOT / "CMakeLists.txt").read_text()
PACKAGE = "mobileinst_ros"
ARGUMENTS = {"namespace", "image_topic", "params_file", "model_path", "overlay", "depth_fusion", "depth_topic",
             "depth_info_topic"}
# Imports a Jazzy/Kilted `ros2 launch` file uses, by module (the public API of launch and launch_ros).
KNOWN_IMPORTS = {
    "launch": {"LaunchDescription"},
    "launch.actions": {"DeclareLaunchArgument", "SetEnvironmentVariable"},
    "launch.substitutions": {"EnvironmentVariable", "LaunchConfiguration", "PathJoinSubstitution"},
    "launch_ros.actions": {"LifecycleNode", "Node"},
    "launch_ros.parameter_descriptions": {"ParameterValue"},
    "launch_ros.substitutions": {"FindPackageShare"},
}


def _tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), str(LAUNCH))


def _calls(name: str) -> list[ast.Call]:
    return [n for n in ast.walk(_tree()) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _keyword(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


def _share_paths() -> list[tuple[str, ...]]:
    """The relative paths joined onto FindPackageShare(...) in PathJoinSubstitution([...])."""
    paths = []
    for call in _calls("PathJoinSubstitution"):
        parts = call.args[0].elts
        assert isinstance(parts[0], ast.Name), "paths are joined onto the package's share directory"
        paths.append(tuple(ast.literal_eval(p) for p in parts[1:]))
    return paths


def _installed_to_share() -> set[str]:
    dirs = set()
    for match in re.finditer(r"install\(DIRECTORY ([^\n]*?) DESTINATION share/\$\{PROJECT_NAME\}", CMAKE):
        dirs.update(match.group(1).split())
    return dirs


def test_imports_are_launch_api_and_the_entry_point_exists() -> None:
    tree = _tree()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = {alias.name for alias in node.names}
            assert node.module in KNOWN_IMPORTS and names <= KNOWN_IMPORTS[node.module], (node.module, names)
        assert not isinstance(node, ast.Import), "launch files import names from launch / launch_ros"
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert [f.name for f in functions] == ["generate_launch_description"]
    (share,) = _calls("FindPackageShare")
    assert ast.literal_eval(share.args[0]) == PACKAGE


def test_arguments_are_declared_and_every_configuration_is_one_of_them() -> None:
    declared = {ast.literal_eval(c.args[0]) for c in _calls("DeclareLaunchArgument")}
    assert declared == ARGUMENTS
    for call in _calls("DeclareLaunchArgument"):
        assert isinstance(_keyword(call, "description"), ast.Constant)
    used = {ast.literal_eval(c.args[0]) for c in _calls("LaunchConfiguration")}
    assert used == declared


def test_the_node_is_the_installed_executable_with_real_parameters_and_topics() -> None:
    (node,) = _calls("LifecycleNode")
    assert ast.literal_eval(_keyword(node, "package")) == PACKAGE
    executable = ast.literal_eval(_keyword(node, "executable"))
    script = ROOT / "scripts" / executable
    assert script.is_file() and script.stat().st_mode & 0o111, f"{script} must exist and be executable"
    assert f"install(PROGRAMS scripts/{executable} DESTINATION lib/${{PROJECT_NAME}})" in CMAKE
    assert "from mobileinst_ros.node.mobileinst_node import main" in script.read_text()
    assert ast.literal_eval(_keyword(node, "name")) == mobileinst_node.NODE_NAME
    parameters = _keyword(node, "parameters").elts
    overrides = next(p for p in parameters if isinstance(p, ast.Dict))
    for key in overrides.keys:
        assert ast.literal_eval(key) in SPEC_BY_NAME, ast.literal_eval(key)
    remapped = [ast.literal_eval(pair.elts[0]) for pair in _keyword(node, "remappings").elts]
    assert remapped == [mobileinst_node.IMAGE_TOPIC, mobileinst_node.DEPTH_TOPIC, mobileinst_node.DEPTH_INFO_TOPIC]


def test_referenced_files_exist_and_are_installed() -> None:
    paths = _share_paths()
    assert ("config", "mobileinst.yaml") in paths and ("config", "fastdds_profile.xml") in paths
    installed = _installed_to_share()
    for parts in paths + [("launch", LAUNCH.name)]:
        assert (ROOT.joinpath(*parts)).is_file(), parts
        assert parts[0] in installed, f"CMakeLists.txt does not install {parts[0]}/ to share/{PACKAGE}"


def test_the_venv_build_installed_them() -> None:
    share = Path(sys.prefix) / "share" / PACKAGE
    if not (share / "package.xml").is_file():
        pytest.skip(f"no CMake install in {sys.prefix} (run `make venv`)")
    for parts in _share_paths() + [("launch", LAUNCH.name)]:
        assert (share.joinpath(*parts)).is_file(), f"{share.joinpath(*parts)} missing: run `make venv`"
    assert (Path(sys.prefix) / "lib" / PACKAGE / "mobileinst_node").is_file()


def test_the_params_file_holds_valid_values_of_declared_parameters() -> None:
    config = yaml.safe_load((ROOT / "config" / "mobileinst.yaml").read_text())
    assert list(config) == ["/**"] and list(config["/**"]) == ["ros__parameters"]
    values = config["/**"]["ros__parameters"]
    assert values, "the shipped config sets the node's main parameters"
    for name, value in values.items():
        spec = SPEC_BY_NAME[name]
        assert Parameter(name, value=value).type_ == spec.type, (name, value)
        assert check_value(name, value) is None
        if spec.bounds is not None:
            assert spec.bounds[0] <= value <= spec.bounds[1], name
