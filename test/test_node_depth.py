"""mobileinst_node with depth fusion, in its own process: colour + aligned depth + CameraInfo in, each
instance located in 3D (InstanceArray fields and RViz markers); missing depth, holes and malformed depth
or camera info give instances without 3D, flagged and counted in /diagnostics, and the node goes on."""
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from mobileinst_ros.msg import Instance
from node_harness import NODE, RELIABLE, Client, export_oracle_model, image_msg, start_node, stamp
from oracle_model import box_mask, frame

pytestmark = pytest.mark.ros

SIZE = (64, 48)
BOXES = {0: (8, 8, 16, 16), 2: (40, 24, 16, 16)}  # red and blue squares
DEPTH_M = {"red": 1.0, "blue": 2.0}
BACKGROUND_M = 4.0
FX, CX, CY = 40.0, 31.5, 23.5
DEPTH_TOPIC, INFO_TOPIC = "/test_camera/depth", "/test_camera/depth_info"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_oracle_model(tmp_path_factory.mktemp("depth") / "oracle", SIZE)


def _header(sec: int) -> Header:
    return Header(stamp=stamp(sec, 500_000_000), frame_id="camera_color_optical_frame")


def _depth(header: Header, holes: bool = False) -> Image:
    millimetres = np.full(SIZE[::-1], BACKGROUND_M * 1000, np.uint16)
    millimetres[box_mask(SIZE, BOXES[0])] = DEPTH_M["red"] * 1000
    millimetres[box_mask(SIZE, BOXES[2])] = DEPTH_M["blue"] * 1000
    if holes:
        millimetres[:] = 0
    return image_msg(millimetres, "16UC1", header)


def _camera_info(fx: float = FX) -> CameraInfo:
    return CameraInfo(width=SIZE[0], height=SIZE[1], k=[fx, 0.0, CX, 0.0, fx, CY, 0.0, 0.0, 1.0])


def _truth(colour: int, depth: float) -> np.ndarray:
    rows, cols = np.nonzero(box_mask(SIZE, BOXES[colour]))
    return np.array([np.mean(cols - CX) * depth / FX, np.mean(rows - CY) * depth / FX, depth])


def test_instances_get_3d_positions_markers_and_honest_flags(model: Path, tmp_path: Path) -> None:
    remaps = ("-r", f"depth/image:={DEPTH_TOPIC}", "-r", f"depth/camera_info:={INFO_TOPIC}")
    with start_node(tmp_path / "node.log", model, "-p", "depth_fusion:=true", "-p", "diagnostics_period:=0.2",
                    *remaps) as node, Client() as client:
        depth_pub = client.node.create_publisher(Image, DEPTH_TOPIC, RELIABLE)
        info_pub = client.node.create_publisher(CameraInfo, INFO_TOPIC, RELIABLE)
        markers: list[MarkerArray] = []
        client.node.create_subscription(MarkerArray, f"{NODE}/markers", markers.append, RELIABLE)
        client.spin_until(lambda: depth_pub.get_subscription_count() and info_pub.get_subscription_count(), 30,
                          "the node's depth subscriptions")

        def answer(sec: int, depth: Image | None) -> dict[str, Instance]:
            header = _header(sec)
            info_pub.publish(_camera_info())
            if depth is not None:
                depth_pub.publish(depth)
            msg = client.publish_until_answered(client.images, image_msg(frame(SIZE, BOXES), "rgb8", header))
            return msg, {inst.class_name: inst for inst in msg.instances}

        # 1. Paired: every square located within 2% of its distance; markers for RViz.
        msg, found = answer(1, _depth(_header(1)))
        while any(i.position_status == Instance.POSITION_NO_DEPTH for i in found.values()):
            msg, found = answer(msg.header.stamp.sec + 1, _depth(_header(msg.header.stamp.sec + 1)))  # first info
        assert (msg.depth_stamp.sec, msg.depth_stamp.nanosec) == (msg.header.stamp.sec, 500_000_000)
        for name, colour in (("red", 0), ("blue", 2)):
            inst, truth = found[name], _truth(colour, DEPTH_M[name])
            assert inst.position_status == Instance.POSITION_OK
            position = np.array([inst.position.x, inst.position.y, inst.position.z])
            assert np.linalg.norm(position - truth) <= 0.02 * np.linalg.norm(truth), (name, position, truth)
            assert inst.distance == pytest.approx(np.linalg.norm(position), rel=1e-5)
            assert inst.extent.x == pytest.approx(0.9 * 16 * DEPTH_M[name] / FX, rel=0.25)
        def markers_of_this_image() -> list[Marker]:
            return next((array.markers for array in markers
                         if array.markers[0].header.stamp == msg.header.stamp), [])

        client.spin_until(markers_of_this_image, 10, "the markers of the located image")
        located = markers_of_this_image()
        assert located[0].action == Marker.DELETEALL
        kinds = [(m.ns, m.type) for m in located[1:]]
        assert sorted(kinds) == sorted([("instances", Marker.CUBE), ("labels", Marker.TEXT_VIEW_FACING)] * 2)
        assert all(m.header.frame_id == "camera_color_optical_frame" for m in located)
        assert f"red #{found['red'].track_id} {found['red'].distance:.2f} m" in [m.text for m in located]

        # 2. No depth image near this stamp (missing or late): flagged, not located.
        _, found = answer(100, None)
        assert {i.position_status for i in found.values()} == {Instance.POSITION_NO_DEPTH}
        # 3. Depth with holes only: flagged per instance.
        _, found = answer(101, _depth(_header(101), holes=True))
        assert {i.position_status for i in found.values()} == {Instance.POSITION_NO_VALID_DEPTH}

        # 4. Malformed depth and camera info: counted and skipped; the next good pair is fused as before.
        depth_pub.publish(Image(header=_header(102), height=48, width=64, encoding="rgb8", step=192, data=bytes(9216)))
        client.wait_for_total("depth rejected", 1)
        info_pub.publish(_camera_info(fx=0.0))
        client.wait_for_total("camera info rejected", 1)
        _, found = answer(103, _depth(_header(103)))
        assert {i.position_status for i in found.values()} == {Instance.POSITION_OK}
        assert found["red"].position.z == pytest.approx(1.0, rel=0.02)
        totals = client.totals()
        assert node.alive()
    assert totals["depth fused"] >= 2 and totals["depth missing"] >= 1, totals
    assert totals["depth rejected"] == 1 and totals["camera info rejected"] == 1, totals
    assert "Traceback" not in node.output()
