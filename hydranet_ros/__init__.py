"""hydranet_ros: one-pass multi-task camera perception (drivable area, depth, detections) for ROS 2.

Layers, each depending only on those above it:
  model/    the network in plain torch (no ROS)
  runtime/  load a model file and run batches (no ROS)
  train/    datasets, losses, trainer (depends on model/ only)
  ros/      everything rclpy: the node, conversions, QoS, diagnostics
  tools/    the `hydranet` command's verbs, thin wrappers over the above
"""

__version__ = "0.1.0"
