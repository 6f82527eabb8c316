"""Everything that talks to ROS 2 (rclpy): the node, message conversions, QoS, diagnostics."""
