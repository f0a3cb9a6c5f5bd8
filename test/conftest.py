"""Test-wide ROS 2 isolation: every pytest run gets its own DDS domain on loopback.

Parallel runs and processes left over from an earlier run then cannot see each other's topics.
Child processes inherit the environment, so cross-process tests share the run's domain.

Fixtures shared by several test files: ``shallow_sizes``.
"""
import os
import random

import pytest

os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


@pytest.fixture
def shallow_sizes(monkeypatch):
    """(h, w) of every image an engine's shallow graph runs on during the test."""
    from mobileinst_ros.runtime.engine import _Graph

    sizes = []
    run = _Graph.run

    def spy(graph, **feeds):
        if "image" in feeds:
            sizes.append(feeds["image"].shape[1:3])
        return run(graph, **feeds)

    monkeypatch.setattr(_Graph, "run", spy)
    return sizes
