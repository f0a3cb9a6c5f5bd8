"""Datasets: synthetic video generator, loaders, clip transforms, rosbag writers."""
