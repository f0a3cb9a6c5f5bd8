"""rosbag2 writing and reading (rosbags): round trips, rclpy compatibility and clear errors."""
from __future__ import annotations

import json
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mobileinst_ros.data import bags, synth
from mobileinst_ros.data.ytvis import decode_rle, load_ytvis
from mobileinst_ros.messages.instances import decode_instances

TOPICS = {bags.IMAGE_TOPIC: bags.IMAGE_TYPE, bags.GT_TOPIC: bags.INSTANCES_TYPE}


@dataclass
class _Inst:
    track_id: int
    class_id: int
    score: float
    mask: np.ndarray


def _frames(count: int) -> list[tuple[int, np.ndarray, list[_Inst]]]:
    rng = np.random.default_rng(0)
    out = []
    for t in range(count):
        rgb = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        a = np.zeros((24, 32), bool)
        a[2 + t:10 + t, 3:9] = True
        b = rng.random((24, 32)) < 0.3
        out.append((1_000 + t * 100_000_000, rgb, [_Inst(7, 1, 0.9, a), _Inst(3, 0, 0.25, b)]))
    return out


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_round_trip_keeps_images_masks_and_stamps(tmp_path: Path, storage: str) -> None:
    frames, names = _frames(3), ["cat", "dog"]
    with bags.BagWriter(tmp_path / "bag", storage) as bag:
        for stamp, rgb, insts in frames:
            bag.write(bags.IMAGE_TOPIC, bags.image_message(rgb, stamp), stamp)
            bag.write(bags.GT_TOPIC, bags.instance_array_message(stamp, 24, 32, insts, names, latency_ms=4.5), stamp)
    read = list(bags.read_messages(tmp_path / "bag", TOPICS))
    assert [(t, topic) for t, topic, _ in read] == [(s, topic) for s, _, _ in frames for topic in TOPICS]
    for (stamp, rgb, insts), (_, _, image), (_, _, array) in zip(frames, read[0::2], read[1::2]):
        assert image.encoding == "rgb8" and image.header.frame_id == "camera"
        assert bags.stamp_ns(image.header) == stamp == bags.stamp_ns(array.header)
        assert np.array_equal(image.data.reshape(24, 32, 3), rgb)
        assert array.latency_ms == pytest.approx(4.5)
        got = decode_instances(array)
        assert [(i.track_id, i.class_id, i.class_name) for i in got] == [(7, 1, "dog"), (3, 0, "cat")]
        assert got[1].score == pytest.approx(0.25)
        for want, have in zip(insts, got):
            assert np.array_equal(have.mask(), want.mask)
        assert (array.instances[0].bbox.x_offset, array.instances[0].bbox.height) == (3, 8)
    assert bags.bag_topics(tmp_path / "bag")[bags.GT_TOPIC] == (bags.INSTANCES_TYPE, 3)


def test_cdr_bytes_are_rclpys_and_type_hash_matches_rosidl(tmp_path: Path) -> None:
    from rclpy.serialization import deserialize_message, serialize_message

    from mobileinst_ros.msg import InstanceArray

    stamp, _, insts = _frames(1)[0]
    ours = bags.instance_array_message(stamp, 24, 32, insts, ["cat", "dog"], is_keyframe=True)
    data = bags.typestore().serialize_cdr(ours, bags.INSTANCES_TYPE)
    theirs = deserialize_message(bytes(data), InstanceArray)
    assert theirs.is_keyframe and theirs.instances[1].class_name == "cat"
    assert list(theirs.instances[0].mask_rle) == list(ours.instances[0].mask_rle)
    # Same bytes, up to CDR alignment padding (rclpy's serializer leaves it uninitialised).
    assert bytes(bags.typestore().serialize_cdr(
        bags.typestore().deserialize_cdr(bytes(serialize_message(theirs)), bags.INSTANCES_TYPE),
        bags.INSTANCES_TYPE)) == bytes(data)
    description = Path(sys.prefix) / "share" / "mobileinst_ros" / "msg" / "InstanceArray.json"
    hashes = json.loads(description.read_text())["type_hashes"]
    rosidl_hash = next(h["hash_string"] for h in hashes if h["type_name"] == bags.INSTANCES_TYPE)
    assert bags.typestore().hash_rihs01(bags.INSTANCES_TYPE) == rosidl_hash


def test_dataset_bag_matches_the_dataset_and_is_deterministic(tmp_path: Path) -> None:
    synth.write_dataset(tmp_path / "ds", videos=2, frames=3, width=48, height=40, seed=4, progress=False)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        assert bags.write_dataset_bag(tmp_path / "ds", tmp_path / name / "bag", fps=15, storage="mcap") == 6
    assert (tmp_path / "a/bag/bag.mcap").read_bytes() == (tmp_path / "b/bag/bag.mcap").read_bytes()
    dataset = load_ytvis(tmp_path / "ds")
    topics = {**TOPICS, bags.CLASSES_TOPIC: bags.MODEL_INFO_TYPE}
    messages = list(bags.read_messages(tmp_path / "a/bag", topics))
    assert list(messages[0][2].class_names) == list(synth.CATEGORIES)
    images = [m for _, topic, m in messages if topic == bags.IMAGE_TOPIC]
    arrays = [m for _, topic, m in messages if topic == bags.GT_TOPIC]
    stamps = [bags.stamp_ns(m.header) for m in images]
    assert np.allclose(np.diff(stamps), 1e9 / 15, atol=1)
    frames = [(v, t) for v, video in enumerate(dataset.videos) for t in range(video.length)]
    for (v, t), image, array in zip(frames, images, arrays, strict=True):
        assert np.array_equal(image.data.reshape(40, 48, 3), dataset.frame(v, t))
        want = {inst.id: decode_rle(inst.rles[t]).astype(bool)
                for inst in dataset.videos[v].instances if inst.rles[t] is not None}
        got = {inst.track_id: inst.mask() for inst in decode_instances(array)}
        assert want.keys() == got.keys()
        assert all(np.array_equal(want[k], got[k]) for k in want)


def _small_bag(path: Path, storage: str = "sqlite3") -> Path:
    stamp, rgb, insts = _frames(1)[0]
    with bags.BagWriter(path, storage) as bag:
        bag.write(bags.IMAGE_TOPIC, bags.image_message(rgb, stamp), stamp)
        bag.write(bags.GT_TOPIC, bags.instance_array_message(stamp, 24, 32, insts, ["cat", "dog"]), stamp)
    return path


def _read_all(path: Path, topics: dict[str, str] = TOPICS) -> list:
    return list(bags.read_messages(path, topics))


def test_missing_topic_and_wrong_type_name_the_topic(tmp_path: Path) -> None:
    bag = _small_bag(tmp_path / "bag")
    with pytest.raises(bags.BagError, match=r"no topic /camera/color.*/camera/image_raw \[sensor_msgs/msg/Image\]"):
        _read_all(bag, {"/camera/color": bags.IMAGE_TYPE})
    with pytest.raises(bags.BagError, match=r"/ground_truth/instances holds mobileinst_ros/msg/InstanceArray, "
                                            r"expected sensor_msgs/msg/Image"):
        _read_all(bag, {bags.GT_TOPIC: bags.IMAGE_TYPE})


def test_empty_missing_and_existing_bags(tmp_path: Path) -> None:
    with bags.BagWriter(tmp_path / "empty", "mcap"):
        pass
    with pytest.raises(bags.BagError, match="empty"):
        _read_all(tmp_path / "empty")
    with pytest.raises(bags.BagError, match="no such bag"):
        _read_all(tmp_path / "nothing")
    with pytest.raises(bags.BagError, match="already exists"):
        bags.BagWriter(tmp_path / "empty")
    with pytest.raises(bags.BagError, match="unknown bag storage"):
        bags.BagWriter(tmp_path / "new", "rosbag1")


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag_file_is_reported_not_crashed(tmp_path: Path, storage: str) -> None:
    bag = _small_bag(tmp_path / "bag", storage)
    data_file = next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    with pytest.raises(bags.BagError, match=rf"{bag}.*(damaged|truncated|not a readable)"):
        _read_all(bag)


def test_a_garbled_message_names_topic_and_type(tmp_path: Path) -> None:
    bag = _small_bag(tmp_path / "bag")
    with sqlite3.connect(bag / "bag.db3") as db:
        db.execute("UPDATE messages SET data = x'0001000000ff' WHERE topic_id = "
                   "(SELECT id FROM topics WHERE name = ?)", (bags.GT_TOPIC,))
    with pytest.raises(bags.BagError, match="/ground_truth/instances .* not a valid mobileinst_ros/msg/InstanceArray"):
        _read_all(bag)
