"""A separate process that publishes a real 1280x720 frame (sensor_msgs/Image, rgb8) and a
vision_msgs/Detection2DArray, repeatedly, until it is stopped. Used by test_environment.py.

    talker.py IMAGE TAG    (TAG goes into header.frame_id, so a listener can tell talkers apart)
"""

from __future__ import annotations

import sys

import cv2
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

from hydranet_ros.ros.convert import numpy_to_image
from hydranet_ros.ros.dds import use_shm_profile

RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)


def detections(header: Header) -> Detection2DArray:
    """Two boxes whose every field the test checks on the other side."""
    out = Detection2DArray(header=header)
    for i, (cx, cy, w, h, cls, score) in enumerate([(640.5, 400.25, 120.0, 80.0, "car", 0.91),
                                                     (200.0, 380.0, 40.0, 90.0, "pedestrian", 0.42)]):
        d = Detection2D(header=header, id=f"det{i}")
        d.bbox = BoundingBox2D()
        d.bbox.center.position.x, d.bbox.center.position.y = cx, cy
        d.bbox.size_x, d.bbox.size_y = w, h
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = cls, score
        d.results.append(hyp)
        out.detections.append(d)
    return out


def main() -> int:
    image_path, tag = sys.argv[1], sys.argv[2]
    rgb = cv2.cvtColor(cv2.imread(image_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    use_shm_profile()
    rclpy.init()
    node = rclpy.create_node(f"talker_{tag}")
    image_pub = node.create_publisher(Image, "/camera/front/image_raw", RELIABLE)
    det_pub = node.create_publisher(Detection2DArray, "/detections", RELIABLE)
    seq = 0

    def tick() -> None:
        nonlocal seq
        header = Header(stamp=node.get_clock().now().to_msg(), frame_id=f"{tag}:{seq}")
        image_pub.publish(numpy_to_image(rgb, "rgb8", header))
        det_pub.publish(detections(header))
        seq += 1

    node.create_timer(0.2, tick)
    print(f"talker {tag} up", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
