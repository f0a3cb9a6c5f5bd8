"""The node in a process of its own, rosbag replay through real topics, and the demo built on both."""
