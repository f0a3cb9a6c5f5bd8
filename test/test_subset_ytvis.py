"""scripts/subset_ytvis.py: the first N videos of a dataset, loadable as a dataset of its own; the source untouched."""
import subprocess
import sys
from pathlib import Path

from mobileinst_ros.data.ytvis import load_ytvis
from tiny_ytvis import write_tiny_ytvis

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "subset_ytvis.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_the_first_videos_with_their_tracks_and_frames(tmp_path: Path) -> None:
    source = write_tiny_ytvis(tmp_path / "all", videos=3, frames=2).parent
    done = _run(str(source), str(tmp_path / "two"), "--videos", "2")
    assert done.returncode == 0, done.stderr
    whole, part = load_ytvis(source / "annotations.json"), load_ytvis(tmp_path / "two" / "annotations.json")
    assert [v.name for v in part.videos] == [v.name for v in whole.videos[:2]]
    assert [len(v.instances) for v in part.videos] == [len(v.instances) for v in whole.videos[:2]]
    assert (part.frame(1, 1) == whole.frame(1, 1)).all()
    assert len(load_ytvis(source / "annotations.json").videos) == 3


def test_an_existing_output_or_a_missing_source_is_refused(tmp_path: Path) -> None:
    source = write_tiny_ytvis(tmp_path / "all", videos=1, frames=2).parent
    assert "exists" in _run(str(source), str(source), "--videos", "1").stderr
    missing = _run(str(tmp_path / "nothing"), str(tmp_path / "out"), "--videos", "1")
    assert missing.returncode == 1 and "annotation file not found" in missing.stderr
    assert not (tmp_path / "out").exists()
