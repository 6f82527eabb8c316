"""Training: datasets, losses, trainer. Depends on hydranet_ros.model only."""
