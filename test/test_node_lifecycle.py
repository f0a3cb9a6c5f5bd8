"""mobileinst_node's lifecycle, driven from another process through its lifecycle services; missing
and corrupt models (clear error naming the file, non-zero exit)."""
from pathlib import Path

import pytest
from lifecycle_msgs.msg import Transition

from node_harness import IMAGE_TOPIC, NODE, Client, start_node, export_oracle_model, run_node

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_oracle_model(tmp_path_factory.mktemp("lifecycle") / "oracle")


def _counts(client: Client) -> tuple[int, int]:
    """(subscribers of the image topic, publishers of the instances topic) in the graph."""
    return client.node.count_subscribers(IMAGE_TOPIC), client.node.count_publishers(f"{NODE}/instances")


def test_transitions_load_the_model_and_start_and_stop_processing(model: Path, tmp_path: Path) -> None:
    with start_node(tmp_path / "node.log", model, "-p", "autostart:=false") as node, Client() as client:
        assert client.state() == "unconfigured"
        assert _counts(client) == (0, 0)

        assert client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.state() == "inactive"
        client.spin_until(lambda: _counts(client) == (0, 1), 10, "the instances publisher, and no subscription")
        assert not client.model_info, "an inactive node publishes nothing"

        assert client.transition(Transition.TRANSITION_ACTIVATE)
        assert client.state() == "active"
        client.spin_until(lambda: _counts(client) == (1, 1), 10, "the image subscription")
        client.spin_until(lambda: client.model_info, 10, "the latched ModelInfo")
        info = client.model_info[-1]
        assert list(info.class_names) == ["red", "green", "blue"]
        assert (info.input_width, info.input_height, info.keyframe_interval) == (64, 48, 3)
        assert info.model_name == str(model)

        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        assert client.state() == "inactive"
        client.spin_until(lambda: _counts(client) == (0, 1), 10, "the image subscription to go")

        assert client.transition(Transition.TRANSITION_CLEANUP)
        assert client.state() == "unconfigured"
        client.spin_until(lambda: _counts(client) == (0, 0), 10, "the publishers to go")

        assert client.transition(Transition.TRANSITION_CONFIGURE), "configures again after a cleanup"
        assert client.transition(Transition.TRANSITION_ACTIVATE)
        assert client.state() == "active"
        assert not client.transition(Transition.TRANSITION_CONFIGURE), "no configure while active"

        assert client.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert client.state() == "finalized"
        assert node.alive()
        assert node.stop() == 0


def test_failed_configure_names_the_missing_model_and_the_node_stays_up(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    with start_node(tmp_path / "node.log", missing, "-p", "autostart:=false") as node, Client() as client:
        assert not client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.state() == "unconfigured"
        assert node.alive()
        assert f"cannot load the model: {missing}" in node.output()


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if "ERROR" in line or "error" in line]
    assert len(errors) == 1, stderr
    return errors[0]


def test_autostart_with_a_missing_model_exits_non_zero_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    result = run_node(missing)
    assert result.returncode != 0
    assert str(missing) in _one_error_line(result.stdout + result.stderr)


def test_autostart_with_a_corrupt_graph_exits_non_zero_naming_the_file(model: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for path in model.rglob("*"):
        if path.is_file():
            target = corrupt / path.relative_to(model)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    graph = next(corrupt.rglob("deep.onnx"))
    graph.write_bytes(graph.read_bytes()[:200])  # truncated
    result = run_node(corrupt)
    assert result.returncode != 0
    assert str(graph) in _one_error_line(result.stdout + result.stderr)
