"""`make demo`'s program end to end on a short bag: the real node in its own process, fed through real
ROS topics, leaves an overlay video and a consistent summary; without a model it stops with one line."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from node_harness import ROOT, export_oracle_model

pytestmark = pytest.mark.ros

FRAMES, FPS, SIZE = 20, 10, (160, 120)


def _demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobileinst_ros.replay.demo", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.mark.parametrize("depth", [False, True], ids=["colour", "with_depth"])
def test_demo_writes_the_overlay_video_and_summary(tmp_path: Path, depth: bool) -> None:
    model = export_oracle_model(tmp_path / "oracle", SIZE)
    out = tmp_path / "demo"
    result = _demo("--model", str(model), "--out", str(out), "--frames", str(FRAMES), "--fps", str(FPS),
                   "--width", str(SIZE[0]), "--height", str(SIZE[1]), *(["--depth"] if depth else []))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_in"] == FRAMES
    assert 0 < summary["frames_processed"] <= FRAMES
    assert summary["frames_processed"] + summary["frames_dropped"] == FRAMES
    assert summary["keyframes"] >= 1
    assert 0 < summary["latency_ms"]["end_to_end"]["p50"] <= summary["latency_ms"]["end_to_end"]["p95"]
    assert summary["latency_ms"]["model"]["p50"] > 0
    assert summary["node_counts"]["received"] > 0
    if depth:  # every processed image paired with its depth (the very first may beat its camera info)
        counts = summary["node_counts"]
        assert counts["depth fused"] + counts["depth missing"] == summary["frames_processed"], counts
        assert counts["depth missing"] <= 1 and counts["depth rejected"] == counts["camera info rejected"] == 0
        assert summary["depth"]["instances"] == summary["instances"]["total"]
        assert "3D (depth fusion)" in result.stdout
    else:
        assert "depth" not in summary
    video = Path(summary["outputs"]["video"])
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == SIZE
    capture.release()
    assert str(video) in result.stdout and str(out / "summary.json") in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_demo_plays_a_real_video_file(tmp_path: Path) -> None:
    """``--video``: frames of a video file from ``--start``, resized to the camera size, through the node;
    the summary says what it saw per class."""
    model = export_oracle_model(tmp_path / "oracle", SIZE)
    video = tmp_path / "camera.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (320, 240))
    for t in range(FRAMES):
        frame = np.full((240, 320, 3), 90, np.uint8)
        cv2.circle(frame, (60 + 5 * t, 120), 30, (20, 200, 20), -1)
        writer.write(frame)
    writer.release()
    out = tmp_path / "demo"
    result = _demo("--model", str(model), "--out", str(out), "--video", str(video), "--start", "5",
                   "--frames", "100", "--fps", str(FPS), "--width", str(SIZE[0]), "--height", str(SIZE[1]))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_in"] == FRAMES - 5 and summary["camera"]["source"] == str(video)
    seen = summary["seen"]
    assert sum(v["per_frame"] for v in seen.values()) == pytest.approx(summary["instances"]["per_processed_frame"],
                                                                       abs=0.05)
    assert "what it saw" in result.stdout


def test_demo_without_a_model_stops_with_one_line(tmp_path: Path) -> None:
    result = _demo("--model", str(tmp_path / "missing"), "--out", str(tmp_path / "demo"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no usable model" in lines[0] and str(tmp_path / "missing") in lines[0]
