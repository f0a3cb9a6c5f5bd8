"""3D from the camera: depth fusion (numpy only, no ROS)."""
