"""ROS 2 side: the lifecycle node and message conversions (rclpy, no torch)."""
