"""mobileinst_node in its own process takes camera images in every common encoding and compressed,
copies their headers, and survives images that cannot be camera frames (rate-limited warnings)."""
from pathlib import Path

import cv2
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from mobileinst_ros.messages.instances import decode_instance_masks
from node_harness import Client, start_node, encode_image, export_oracle_model, image_msg, stamp
from oracle_model import box_mask, frame, iou

pytestmark = pytest.mark.ros

SIZE = (64, 48)  # (w, h), the oracle model's resolution
BOXES = {0: (8, 8, 16, 16), 2: (40, 24, 16, 16)}  # red and blue squares on gray
SCENE = frame(SIZE, BOXES)
COLOUR_ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3", "rgb16", "bgr16", "bayer_rggb8", "yuv422_yuy2"]
GRAY_ENCODINGS = ["mono8", "mono16"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_oracle_model(tmp_path_factory.mktemp("images") / "oracle", SIZE)


def _header(index: int) -> Header:
    return Header(stamp=stamp(1_700_000_000 + index, 123_456_789), frame_id=f"camera_optical_{index}")


def _assert_finds_the_squares(msg, header: Header) -> None:
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
        header.stamp.sec, header.stamp.nanosec, header.frame_id)
    assert (msg.width, msg.height) == SIZE
    found = {inst.class_name: mask for inst, mask in zip(msg.instances, decode_instance_masks(msg))}
    assert sorted(found) == ["blue", "red"]
    assert iou(found["red"], box_mask(SIZE, BOXES[0])) > 0.7
    assert iou(found["blue"], box_mask(SIZE, BOXES[2])) > 0.7


def _bad_images() -> dict[str, Image]:
    """Images no camera frame can be, each with what the node's warning must say."""
    ok = image_msg(SCENE, "rgb8")
    return {
        "is depth/float/signed data": Image(height=48, width=64, encoding="32FC1", step=256, data=bytes(256 * 48)),
        "is not a known image encoding": Image(height=48, width=64, encoding="rgb_8", step=192, data=ok.data),
        "is empty": Image(height=0, width=0, encoding="rgb8", step=0, data=b""),
        "truncated": Image(height=48, width=64, encoding="rgb8", step=192, data=bytes(ok.data)[:5000]),
        "larger than": Image(height=60_000, width=60_000, encoding="mono8", step=60_000, data=bytes(100)),
        "is smaller than one": Image(height=48, width=64, encoding="rgb8", step=100, data=bytes(100 * 48)),
    }


def test_every_encoding_is_segmented_with_its_header_copied(model: Path, tmp_path: Path) -> None:
    with start_node(tmp_path / "node.log", model) as node, Client() as client:
        for index, encoding in enumerate(COLOUR_ENCODINGS):
            header = _header(index)
            msg = client.publish_until_answered(client.images, encode_image(SCENE, encoding, header))
            _assert_finds_the_squares(msg, header)
        for index, encoding in enumerate(GRAY_ENCODINGS, start=len(COLOUR_ENCODINGS)):
            msg = client.publish_until_answered(client.images, encode_image(SCENE, encoding, _header(index)))
            assert (msg.width, msg.height, len(msg.instances)) == (*SIZE, 0)  # the oracle sees colour only
        assert node.alive()
    assert "WARN" not in node.output()


def test_images_that_are_not_camera_frames_are_skipped_with_one_warning_each(model: Path, tmp_path: Path) -> None:
    with start_node(tmp_path / "node.log", model, "-p", "diagnostics_period:=0.1") as node, Client() as client:
        # A good image first: once it is answered, both ends of the image topic have matched.
        client.publish_until_answered(client.images, encode_image(SCENE, "rgb8", _header(99)))
        bad = _bad_images()
        for index, msg in enumerate(bad.values()):
            for repeat in range(3):  # the same problem again is held back
                msg.header = _header(100 + 10 * index + repeat)
                client.images.publish(msg)
                # Wait until the node has seen it: a newer image would replace it unseen (newest first).
                client.wait_for_total("rejected", 3 * index + repeat + 1)
                # A good image after each bad one is answered: the node went on.
                header = _header(10 * index + repeat)
                _assert_finds_the_squares(client.publish_until_answered(client.images, encode_image(SCENE, "rgb8", header)),
                                          header)
        assert node.alive()
        bad_stamps = {1_700_000_000 + 100 + k for k in range(10 * len(bad))}
        assert not [m for m in client.instances if m.header.stamp.sec in bad_stamps]
    log = node.output()
    warnings = [line for line in log.splitlines() if "WARN" in line]
    for fragment in bad:
        assert len([w for w in warnings if fragment in w]) == 1, (fragment, warnings)
    assert "Traceback" not in log


def _compressed(ext: str, header: Header, data: bytes | None = None) -> CompressedImage:
    ok, buf = cv2.imencode(ext, SCENE[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100] if ext == ".jpg" else [])
    assert ok
    fmt = "rgb8; jpeg compressed bgr8" if ext == ".jpg" else "rgb8; png compressed bgr8"
    return CompressedImage(header=header, format=fmt, data=buf.tobytes() if data is None else data)


def test_compressed_input_and_corrupt_jpeg(model: Path, tmp_path: Path) -> None:
    with start_node(tmp_path / "node.log", model, "-p", "input_transport:=compressed",
                     "-p", "diagnostics_period:=0.1") as node, Client() as client:
        for index, ext in enumerate([".jpg", ".png"]):
            header = _header(index)
            _assert_finds_the_squares(client.publish_until_answered(client.compressed, _compressed(ext, header)),
                                      header)
        jpeg = bytes(_compressed(".jpg", _header(0)).data)
        corrupt = _compressed(".jpg", _header(50), data=jpeg[:300] + bytes(len(jpeg) - 300))
        client.compressed.publish(corrupt)
        client.wait_for_total("rejected", 1)
        header = _header(51)
        _assert_finds_the_squares(client.publish_until_answered(client.compressed, _compressed(".png", header)), header)
        assert node.alive()
        assert not [m for m in client.instances if m.header.stamp.sec == 1_700_000_050]
    warnings = [line for line in node.output().splitlines() if "WARN" in line]
    assert len(warnings) == 1 and "cannot be decoded" in warnings[0], warnings
