"""mobileinst-bench --video: the timings run on the frames of a real input (a video file, image folder or bag)."""
import json

import cv2

from mobileinst_ros.bench.bench import main as bench_main
from mobileinst_ros.data.synth import generate_video


def write_video(path, frames):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def test_bench_on_the_frames_of_a_video(tmp_path, capsys):
    video = tmp_path / "shapes.avi"
    write_video(video, generate_video(seed=7, index=0, frames=34, width=400, height=400).frames)
    out = tmp_path / "bench.json"
    args = ["--model", "models/shapes", "--resolution", "320x320", "--rounds", "1", "--warmup", "0", "--frames", "3",
            "--no-int8", "--no-peers"]
    assert bench_main([*args, "--video", str(video), "--video-start", "4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["video"] == f"{video}@4"
    assert result["latency_ms"]["320x320"]["fp32"]["T3"]["frames"] == 3

    assert bench_main([*args, "--video", str(video), "--video-start", "10"]) == 1  # 24 frames left, 30 needed
    assert "needs 30" in capsys.readouterr().err
    assert bench_main([*args, "--video", str(tmp_path / "missing.avi")]) == 1
    assert "missing.avi" in capsys.readouterr().err
