"""Python install of mobileinst_ros for the project venv (console scripts, editable development).

On a ROS 2 robot the package is built by colcon through CMakeLists.txt (ament_cmake), which also
generates the messages; this file is not used there.
"""
from setuptools import find_packages, setup

setup(
    name="mobileinst_ros",
    version="0.1.0",
    description="MobileInst video instance segmentation and tracking for ROS 2 on one CPU core",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["mobileinst_ros", "mobileinst_ros.*"]),
    entry_points={
        "console_scripts": [
            "mobileinst-synth = mobileinst_ros.data.synth:main",
            "mobileinst-autolabel = mobileinst_ros.autolabel.cli:main",
            "mobileinst-train = mobileinst_ros.training.train:main",
            "mobileinst-export = mobileinst_ros.export.export:main",
            "mobileinst-quantize = mobileinst_ros.export.quantize:main",
            "mobileinst-bench = mobileinst_ros.bench.bench:main",
            "mobileinst-eval = mobileinst_ros.evaluation.cli:main",
            "mobileinst-demo = mobileinst_ros.replay.demo:main",
            "mobileinst_node = mobileinst_ros.node.mobileinst_node:main",
        ],
    },
)
