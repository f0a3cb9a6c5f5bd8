"""Test-wide ROS 2 isolation: every pytest run, and every pytest-xdist worker of a run, gets its own DDS
domain on loopback.

Parallel runs, the workers of one run and processes left over from an earlier run then cannot see each
other's topics. Child processes inherit the environment, so cross-process tests share their worker's domain.

Fixtures shared by several test files: ``shallow_sizes``.
"""
import os
import random

import pytest

_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))  # xdist sets both per worker
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
os.environ["ROS_DOMAIN_ID"] = str(1 + (random.Random(_RUN).randrange(0, 100, 8) + _WORKER) % 100)
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
