"""hydranet publish-image: publish image files as a camera (Image or CompressedImage, + CameraInfo)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, help="image files (jpg, png), published in this order")
    p.add_argument("--topic", default="/camera/front/image_raw", help="image topic (default: %(default)s)")
    p.add_argument("--camera-info-topic", default="",
                   help="CameraInfo topic (default: next to the image topic, as image_transport and hydranet_node "
                        "name it: /a/image_raw/compressed -> /a/camera_info)")
    p.add_argument("--intrinsics", type=Path, help="intrinsics JSON (image_size_wh, K, dist_k1k2p1p2k3) for CameraInfo")
    p.add_argument("--frame-id", default="camera_front_optical", help="header.frame_id (default: %(default)s)")
    p.add_argument("--encoding", default="rgb8", choices=("rgb8", "bgr8", "mono8", "jpeg", "png"),
                   help="raw encoding, or jpeg/png for sensor_msgs/CompressedImage (default: %(default)s)")
    p.add_argument("--rate", type=float, default=10.0, help="frames per second (default: %(default)s)")
    p.add_argument("--count", type=int, default=0, help="frames to publish; 0: each image once (default)")
    p.add_argument("--loop", action="store_true", help="repeat forever (Ctrl-C to stop)")
    p.add_argument("--wait-subscribers", type=int, default=1, metavar="N",
                   help="wait for N subscribers before publishing (default: %(default)s; 0: do not wait)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for subscribers (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    import cv2
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from hydranet_ros.ros.dds import use_shm_profile
    from hydranet_ros.ros.params import camera_info_beside
    from hydranet_ros.ros.process import ros_process

    if args.rate <= 0:
        print("hydranet publish-image: --rate must be > 0", file=sys.stderr)
        return 2
    frames = []
    for path in args.images:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"hydranet publish-image: cannot read image {path}", file=sys.stderr)
            return 2
        frames.append((path, bgr))

    compressed = args.encoding in ("jpeg", "png")
    info_topic = args.camera_info_topic or camera_info_beside(args.topic, compressed)
    with ros_process(use_shm_profile) as stop:  # Ctrl-C ends the loop between frames
        node = rclpy.create_node("hydranet_publish_image")
        try:
            return _publish(args, node, frames, compressed, info_topic, stop)
        except ExternalShutdownException:
            return 0
        finally:
            node.destroy_node()


def _publish(args: argparse.Namespace, node: Any, frames: list[tuple[Path, Any]], compressed: bool, info_topic: str,
             stop: threading.Event) -> int:
    import cv2
    import rclpy
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from std_msgs.msg import Header

    from hydranet_ros.ros.convert import camera_info_from_json, numpy_to_image

    pub = node.create_publisher(CompressedImage if compressed else Image, args.topic, 10)
    info_pub = node.create_publisher(CameraInfo, info_topic, 10) if args.intrinsics else None
    deadline = time.monotonic() + args.timeout
    while pub.get_subscription_count() < args.wait_subscribers and not stop.is_set():
        if time.monotonic() > deadline:
            print(f"hydranet publish-image: no subscriber on {args.topic} after {args.timeout:.0f} s",
                  file=sys.stderr)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    total = args.count or len(frames)
    i = 0
    while (args.loop or i < total) and not stop.is_set():
        path, bgr = frames[i % len(frames)]
        header = Header(stamp=node.get_clock().now().to_msg(), frame_id=args.frame_id)
        if compressed:
            ok, buf = cv2.imencode(".jpg" if args.encoding == "jpeg" else ".png", bgr)
            msg = CompressedImage(header=header, format=args.encoding, data=buf.tobytes())
        elif args.encoding == "mono8":
            msg = numpy_to_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), "mono8", header)
        elif args.encoding == "rgb8":
            msg = numpy_to_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "rgb8", header)
        else:
            msg = numpy_to_image(bgr, "bgr8", header)
        pub.publish(msg)
        if info_pub is not None:
            info_pub.publish(camera_info_from_json(args.intrinsics, bgr.shape[1], bgr.shape[0], header))
        print(f"published {path.name} {bgr.shape[1]}x{bgr.shape[0]} {args.encoding} on {args.topic}", flush=True)
        i += 1
        rclpy.spin_once(node, timeout_sec=1.0 / args.rate)
    # Reliable delivery of the last frames before the process goes away.
    pub.wait_for_all_acked(rclpy.duration.Duration(seconds=2.0))
    return 0
