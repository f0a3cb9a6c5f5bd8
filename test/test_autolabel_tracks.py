"""Linking teacher detections into tracks: IoU + Hungarian, gaps interpolated, weak tracks dropped."""
import numpy as np

from mobileinst_ros.autolabel.teacher import Detections
from mobileinst_ros.autolabel.tracks import TrackOptions, box_iou, link_tracks


def _frame(*objects: tuple[float, float, float, int]) -> Detections:
    """objects: (x, y, score, label) of 20x40 boxes."""
    if not objects:
        return Detections.empty()
    boxes = np.array([[x, y, x + 20, y + 40] for x, y, _, _ in objects], np.float32)
    return Detections(boxes, np.array([s for *_, s, _ in objects], np.float32),
                      np.array([lb for *_, lb in objects], np.int64))


def test_box_iou() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_two_objects_passing_each_other_keep_their_tracks() -> None:
    """Listed in swapped order every other frame; assignment follows overlap, not list order."""
    frames = []
    for t in range(8):
        a, b = (10 + 3 * t, 50, 0.9, 0), (80 - 3 * t, 52, 0.8, 0)
        frames.append(_frame(a, b) if t % 2 else _frame(b, a))
    tracks = link_tracks(frames, TrackOptions(min_length=3))
    assert len(tracks) == 2
    for track in tracks:
        xs = [track.boxes[t][0] for t in range(8)]
        steps = np.diff(xs)
        assert np.all(steps == steps[0]) and abs(steps[0]) == 3


def test_gaps_are_interpolated_and_long_gaps_split_tracks() -> None:
    frames = [_frame((10 + 2 * t, 10, 0.9, 0)) for t in range(10)]
    frames[4] = frames[5] = _frame()  # teacher misses two frames
    (track,) = link_tracks(frames, TrackOptions(max_gap=2))
    assert sorted(track.boxes) == list(range(10)) and track.interpolated() == {4, 5}
    np.testing.assert_allclose(track.boxes[4], [18, 10, 38, 50])
    tracks = link_tracks(frames, TrackOptions(max_gap=1, min_length=3))
    assert [sorted(tr.boxes) for tr in tracks] == [[0, 1, 2, 3], [6, 7, 8, 9]]


def test_short_and_low_score_tracks_are_dropped_and_classes_never_mix() -> None:
    frames = []
    for t in range(6):
        objects = [(10, 10, 0.9, 0), (10, 10, 0.8, 1), (100, 100, 0.3, 0)]  # person, a car on it, weak ghost
        if t < 2:
            objects.append((200, 10, 0.9, 0))  # a flash: two frames only
        frames.append(_frame(*objects))
    tracks = link_tracks(frames, TrackOptions(min_length=3, min_mean_score=0.4, min_score=0.25))
    assert sorted(tr.label for tr in tracks) == [0, 1]
    assert all(len(tr.boxes) == 6 and tr.boxes[0][0] == 10 for tr in tracks)
    looser = link_tracks(frames, TrackOptions(min_length=3, min_mean_score=0.2))
    assert sorted(round(tr.mean_score, 2) for tr in looser) == [0.3, 0.8, 0.9]
