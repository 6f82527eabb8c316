"""Publish a vehicle's static transforms on /tf_static, as a robot_state_publisher or
`ros2 run tf2_ros static_transform_publisher` does: stock Fast DDS settings (none of our profile), reliable,
transient local, one latched TFMessage. Then stay up until stopped.

    tf_static.py TRANSFORMS_JSON

TRANSFORMS_JSON: [{"parent", "child", "xyz": [x, y, z], "xyzw": [qx, qy, qz, qw]}, ...] (NaN allowed: "nan").
"""

from __future__ import annotations

import json
import sys
import time

import rclpy
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("tf_static_publisher")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(TFMessage, "/tf_static", qos)
    msg = TFMessage()
    for t in json.loads(sys.argv[1]):
        ts = TransformStamped()
        ts.header.stamp = node.get_clock().now().to_msg()
        ts.header.frame_id, ts.child_frame_id = t["parent"], t["child"]
        tr, q = ts.transform.translation, ts.transform.rotation
        tr.x, tr.y, tr.z = (float(v) for v in t["xyz"])
        q.x, q.y, q.z, q.w = (float(v) for v in t["xyzw"])
        msg.transforms.append(ts)
    pub.publish(msg)
    print(f"published {len(msg.transforms)} static transforms", flush=True)
    try:
        while rclpy.ok():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
