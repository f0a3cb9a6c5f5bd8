"""scripts/object_errors.py: per object size, what a model finds, names wrong and how close its masks come."""
import subprocess
import sys
from pathlib import Path

from tiny_ytvis import write_tiny_ytvis

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "object_errors.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_every_object_frame_lands_in_one_size_row(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    made = subprocess.run([sys.executable, "-m", "mobileinst_ros.data.synth", "--out", str(out), "--videos", "2",
                           "--frames", "2", "--width", "384", "--height", "288", "--seed", "3000", "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    done = _run("models/shapes", str(out / "annotations.json"), "--every", "1")
    assert done.returncode == 0, done.stderr
    total = int(done.stdout.split(": ")[1].split()[0])
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| ") and "px" not in line]
    assert total > 0 and sum(int(row[2]) for row in rows) == total
    assert "named wrong" in done.stdout


def test_a_missing_model_or_other_classes_are_refused(tmp_path: Path) -> None:
    data = write_tiny_ytvis(tmp_path / "tiny", videos=1, frames=2)
    missing = _run(str(tmp_path / "nothing"), str(data))
    assert missing.returncode == 2 and "model directory does not exist" in missing.stderr
    other = _run("models/shapes", str(data))
    assert other.returncode == 2 and "are not the dataset's" in other.stderr
