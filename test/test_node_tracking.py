"""Over a synthetic sequence of moving squares, mobileinst_node keeps one track id per object, marks
every T-th image a keyframe, and draws the overlay and the instance-id label image for subscribers."""
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from mobileinst_ros.messages.instances import decode_instance_masks
from node_harness import NODE, RELIABLE, Client, start_node, encode_image, export_oracle_model, stamp
from oracle_model import box_mask, frame, iou

pytestmark = pytest.mark.ros

SIZE = (128, 96)  # squares span several of the oracle's 8-pixel cells
FRAMES = 15


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_oracle_model(tmp_path_factory.mktemp("tracking") / "oracle", SIZE)


def _boxes(t: int) -> dict[int, tuple[int, int, int, int]]:
    """Red moves right along the top, blue left along the bottom (they pass each other), green down the
    right edge; none covers another."""
    return {0: (4 + 4 * t, 4, 32, 32), 2: (92 - 4 * t, 60, 32, 32), 1: (96, 4 + 2 * t, 32, 32)}


def test_track_ids_are_stable_and_debug_images_are_drawn(model: Path, tmp_path: Path) -> None:
    with start_node(tmp_path / "node.log", model, "-p", "publish_labels:=true") as node, Client() as client:
        labels: list[Image] = []
        client.node.create_subscription(Image, f"{NODE}/labels", labels.append, RELIABLE)
        client.subscribe_overlay()
        answers = []
        for t in range(FRAMES):
            header = Header(stamp=stamp(1_700_000_000, t * 100_000_000), frame_id="camera")
            answers.append(client.publish_until_answered(client.images, encode_image(frame(SIZE, _boxes(t)), "rgb8",
                                                                                      header)))
        client.spin_until(lambda: len(client.overlays) >= FRAMES and len(labels) >= FRAMES, 10, "debug images")
        assert node.alive()

    tracks: dict[str, set[int]] = {"red": set(), "green": set(), "blue": set()}
    for t, msg in enumerate(answers):
        assert msg.is_keyframe == (t % 3 == 0), t
        colour_of = {"red": 0, "green": 1, "blue": 2}
        for inst, mask in zip(msg.instances, decode_instance_masks(msg)):
            tracks[inst.class_name].add(inst.track_id)
            assert iou(mask, box_mask(SIZE, _boxes(t)[colour_of[inst.class_name]])) > 0.5, (t, inst.class_name)
        assert len(msg.instances) == 3, t
    assert all(len(ids) == 1 for ids in tracks.values()), tracks
    assert len(set.union(*tracks.values())) == 3

    last = answers[-1]
    overlay = next(o for o in client.overlays if o.header.stamp == last.header.stamp)
    assert (overlay.encoding, overlay.width, overlay.height) == ("rgb8", *SIZE)
    drawn = np.frombuffer(overlay.data, np.uint8).reshape(SIZE[1], SIZE[0], 3)
    scene = frame(SIZE, _boxes(FRAMES - 1))
    assert np.abs(drawn.astype(int) - scene).mean() > 5, "the overlay must differ from the camera image"

    label = next(m for m in labels if m.header.stamp == last.header.stamp)
    assert label.encoding == "32SC1"
    ids = np.frombuffer(label.data, "<i4").reshape(SIZE[1], SIZE[0])
    for inst, mask in zip(last.instances, decode_instance_masks(last)):
        assert (ids[mask] == inst.track_id).mean() > 0.9
    assert set(np.unique(ids)) <= {0} | {inst.track_id for inst in last.instances}
