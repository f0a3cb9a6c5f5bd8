"""Test-wide ROS 2 isolation: every pytest run gets its own DDS domain on loopback.

Parallel runs and processes left over from an earlier run then cannot see each other's topics.
Child processes inherit the environment, so cross-process tests share the run's domain.
"""
import os
import random

os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
