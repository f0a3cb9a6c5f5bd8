"""mobileinst_node's parameters, set from another process: out-of-range and malformed values are
rejected with their reason, configure-time ones are refused while configured, thresholds, labels and
T change the running node at once; a bad value at start-up stops the node with one line."""
from pathlib import Path

import pytest
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from node_harness import Client, start_node, encode_image, export_oracle_model, run_node, stamp
from oracle_model import frame

pytestmark = pytest.mark.ros

SIZE = (64, 48)
SCENE = frame(SIZE, {0: (8, 8, 16, 16), 1: (40, 8, 16, 16), 2: (24, 32, 16, 16)})  # red, green, blue


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_oracle_model(tmp_path_factory.mktemp("parameters") / "oracle", SIZE)


def _image(index: int):
    return encode_image(SCENE, "rgb8", Header(stamp=stamp(1_700_000_000, index), frame_id="camera"))


@pytest.mark.parametrize("name, value, reason", [
    ("threads", 0, "out of range"),
    ("score_threshold", "high", "expecting type 'DOUBLE'"),
    ("qos_reliability", "sometimes", "must be one of best_effort, reliable"),
    ("resolution", "640by480", "resolution must look like 640x480"),
])
def test_bad_values_at_start_up_stop_the_node_with_one_line(model: Path, name: str, value: object,
                                                            reason: str) -> None:
    result = run_node(model, "-p", f"{name}:={value}")
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0] and reason in lines[0], lines


def test_run_time_changes_are_checked_and_applied(model: Path, tmp_path: Path) -> None:
    with start_node(tmp_path / "node.log", model) as node, Client() as client:
        first = client.publish_until_answered(client.images, _image(0))
        assert sorted(i.class_name for i in first.instances) == ["blue", "green", "red"]
        # Unset thresholds show the model's defaults once configured (model.yaml of the export).
        assert client.get_parameter("score_threshold") == pytest.approx(0.3)
        assert client.get_parameter("keyframe_interval") == 3

        rejected = {
            ("score_threshold", 1.5): "out of range",
            ("mask_threshold", -0.1): "out of range",
            ("keyframe_interval", 0): "out of range",
            ("association_threshold", 2.0): "out of range",
            ("max_track_age", -1): "out of range",
            ("non_keyframe_scale", 0.1): "out of range",
            ("score_threshold", "high"): "Wrong parameter type",
            ("adaptive_keyframes", "yes"): "Wrong parameter type",
            ("reuse_mode", "everything"): "must be one of features, kernels",
            ("labels", ("red", "purple")): "not classes of the model",
            ("model_path", "/elsewhere"): "read at configure",
            ("threads", 2): "read at configure",
            ("input_transport", "compressed"): "read at configure",
        }
        for (name, value), reason in rejected.items():
            result = client.set_parameter(name, list(value) if isinstance(value, tuple) else value)
            assert not result.successful and reason in result.reason, (name, result.reason)
        assert client.get_parameter("score_threshold") == pytest.approx(0.3)

        # T at run time: every image becomes a keyframe, and the latched ModelInfo says so.
        assert client.set_parameter("keyframe_interval", 1).successful
        client.spin_until(lambda: client.model_info and client.model_info[-1].keyframe_interval == 1, 10,
                          "ModelInfo with keyframe_interval 1")
        answers = [client.publish_until_answered(client.images, _image(k)) for k in range(1, 4)]
        assert all(a.is_keyframe for a in answers)
        assert client.get_parameter("adaptive_keyframes") is False
        assert client.set_parameter("adaptive_keyframes", True).successful
        assert client.get_parameter("adaptive_keyframes") is True
        assert client.get_parameter("reuse_mode") == "features"
        assert client.set_parameter("reuse_mode", "kernels").successful   # the paper's reuse, live
        assert client.get_parameter("reuse_mode") == "kernels"
        assert client.set_parameter("non_keyframe_scale", 0.75).successful
        assert client.get_parameter("non_keyframe_scale") == pytest.approx(0.75)
        assert client.get_parameter("non_keyframe_crops") is True
        assert client.set_parameter("non_keyframe_crops", False).successful
        assert client.get_parameter("non_keyframe_crops") is False

        # Labels and score threshold at run time.
        assert client.set_parameter("labels", ["red", "blue"]).successful
        assert sorted(i.class_name for i in client.publish_until_answered(client.images, _image(4)).instances) == [
            "blue", "red"]
        assert client.set_parameter("labels", [], Parameter.Type.STRING_ARRAY).successful  # every class again
        assert client.set_parameter("score_threshold", 1.0).successful
        assert client.publish_until_answered(client.images, _image(5)).instances == []
        assert node.alive()
