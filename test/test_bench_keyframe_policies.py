"""Keyframe policy names of bench/keyframes.py: interval, adaptive keyframes, reuse mode."""
import pytest

from mobileinst_ros.bench.keyframes import parse_policy


@pytest.mark.parametrize("text, expected", [("1", (1, False, "features")), ("6a", (6, True, "features")),
                                            ("3k", (3, False, "kernels")), ("3ak", (3, True, "kernels"))])
def test_policies_parse(text, expected):
    assert parse_policy(text) == expected


@pytest.mark.parametrize("text", ["", "k", "a3", "0", "3ka", "three"])
def test_bad_policies_are_refused(text):
    with pytest.raises(ValueError):
        parse_policy(text)
