"""The network in plain torch: backbones, decoder, heads, export. Never imports rclpy."""
