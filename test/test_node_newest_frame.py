"""Under a 60 Hz camera of large images that the node cannot keep up with, it always processes the
newest image: no queue grows (memory stays flat, answers stay fresh), every image it skipped is
counted as dropped, and the last image sent is processed."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from mobileinst_ros.msg import InstanceArray
from node_harness import IMAGE_TOPIC, NODE, RELIABLE, Client, start_node, export_oracle_model, with_fastdds_profile

pytestmark = pytest.mark.ros

BURST = Path(__file__).with_name("node_image_burst.py")
# 3.7 MB images: masks, RLE and the overlay at this size take well over 1/60 s.
WIDTH, HEIGHT, RATE, SECONDS = 1280, 960, 60.0, 2.0


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_oracle_model(tmp_path_factory.mktemp("newest") / "oracle", (64, 48))


def test_newest_frame_under_a_60_hz_camera(model: Path, tmp_path: Path) -> None:
    env = with_fastdds_profile()  # 3.7 MB images over shared memory, as the README tells users to run
    with start_node(tmp_path / "node.log", model, "-p", "diagnostics_period:=0.2", env=env) as node, \
            Client() as client:
        client.subscribe_overlay()  # the node draws the overlay of every frame too: slower than the camera
        ages_ms: list[float] = []  # receive time - image stamp of every answer

        def on_answer(msg: InstanceArray) -> None:
            ages_ms.append((time.time_ns() - msg.header.stamp.sec * 10**9 - msg.header.stamp.nanosec) / 1e6)

        client.node.create_subscription(InstanceArray, f"{NODE}/instances", on_answer, RELIABLE)
        client.spin_until(lambda: client.totals(), 30, "the node's diagnostics")
        rss_before = node.rss_mb()
        burst = subprocess.Popen([sys.executable, str(BURST), IMAGE_TOPIC, f"{NODE}/instances", str(WIDTH),
                                  str(HEIGHT), str(RATE), str(SECONDS)], env=env, stdout=subprocess.PIPE, text=True)
        rss_peak = rss_before
        while burst.poll() is None:
            client.executor.spin_once(timeout_sec=0.05)
            rss_peak = max(rss_peak, node.rss_mb())
        assert burst.returncode == 0
        _, sent, last_stamp = burst.stdout.read().split()
        sent, last_stamp = int(sent), int(last_stamp)

        def settled() -> bool:
            t = client.totals()
            return t.get("received", 0) > 0 and t["processed"] + t["dropped"] == t["received"] \
                and len(client.instances) == t["processed"]

        client.spin_until(settled, 30, "every received image to be processed or dropped")
        totals = client.totals()
        statuses = [s for array in client.diagnostics for s in array.status if s.name.startswith(NODE)]
        answered = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in client.instances}
        assert node.alive(), (tmp_path / "node.log").read_text()[-2000:]

    # Every burst image is accounted for: received, or lost on the way (counted from sequence numbers
    # after the node's first image, a warm-up one).
    assert totals["received"] + totals["lost"] >= 0.95 * sent, (totals, sent)
    assert totals["dropped"] + totals["lost"] > 0.2 * sent, totals  # the node could not keep up ...
    assert totals["rejected"] == totals["failed"] == 0
    newest = (last_stamp // 10**9, last_stamp % 10**9)
    assert newest in answered, ("... yet the newest image is processed", newest, sorted(answered)[-3:], totals)
    # A queue of the images not processed would hold hundreds of MB (3.7 MB each); the node's growth is
    # its working set and the shared-memory segments of the camera and of its own publishers.
    queued_mb = (totals["dropped"] + totals["lost"]) * WIDTH * HEIGHT * 3 / 2**20
    assert rss_peak - rss_before < min(150, queued_mb / 2), (rss_peak - rss_before, queued_mb)
    # With a queue, answers would get older through the burst, by one processing time per image.
    assert max(ages_ms) < 1500, sorted(ages_ms)[-5:]
    assert any(s.level == DiagnosticStatus.WARN and "cannot keep up" in s.message for s in statuses), \
        sorted({(s.level, s.message) for s in statuses})
