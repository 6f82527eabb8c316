"""Recordings: rosbag2 files read and written with `rosbags` (rosbag.py), camera bags made from videos and image
folders (make_bag.py), replay and record as ROS processes (replay.py, record.py: the only modules here that use
rclpy), and the visual report of a recorded drive (report/). Never imports `train/`."""
