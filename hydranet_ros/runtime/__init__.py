"""Load a model file and run batches: engines, pre/post-processing, the model contract. Never imports rclpy."""
