"""hydranet demo: start hydranet_node as its own process, feed it a real frame, print what it publishes.

At this stage of the project the node publishes no perception results yet (no model): the demo shows the
node coming up on real DDS, receiving a real 1280x720 frame and reporting it on /diagnostics. It grows into
the full replay-and-report demo as the model and the node land.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DEFAULT_IMAGE = SAMPLES / "project_video_0750.jpg"
DEFAULT_INTRINSICS = SAMPLES / "udacity_camera_intrinsics.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGE,
                   help="frame to feed the node (default: a shipped Udacity frame, %(default)s)")
    p.add_argument("--intrinsics", type=Path, default=DEFAULT_INTRINSICS,
                   help="intrinsics JSON for its CameraInfo (default: the Udacity camera's)")
    p.add_argument("--domain-id", type=int, default=None,
                   help="ROS_DOMAIN_ID to use (default: a random free-looking one, so the demo is isolated)")
    p.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds (default: %(default)s)")


def _print_diagnostics(array) -> None:
    for st in array.status:
        level = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}.get(int.from_bytes(st.level, "little")
                                                                 if isinstance(st.level, bytes) else st.level, "?")
        print(f"  [{level}] {st.name}: {st.message}")
        for kv in st.values:
            print(f"      {kv.key} = {kv.value}")


def run(args: argparse.Namespace) -> int:
    import cv2

    frame = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if frame is None:
        print(f"hydranet demo: cannot read image {args.image}", file=sys.stderr)
        return 2
    domain = args.domain_id if args.domain_id is not None else random.randint(1, 200)
    log_dir = Path(tempfile.mkdtemp(prefix="hydranet_demo_"))
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(log_dir))

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from hydranet_ros.ros.convert import camera_info_from_json, numpy_to_image
    from hydranet_ros.ros.dds import use_shm_profile

    use_shm_profile()  # before the node starts: it inherits this environment
    print(f"hydranet demo: ROS_DOMAIN_ID={domain}, discovery on localhost only, logs in {log_dir}")
    node_log = log_dir / "hydranet_node.out"
    with open(node_log, "wb") as out:
        node_proc = subprocess.Popen([sys.executable, "-m", "hydranet_ros.ros.node"], env=dict(os.environ),
                                     stdout=out, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("hydranet_demo")
    received: list = []
    node.create_subscription(DiagnosticArray, "/diagnostics", received.append, 10)
    image_pub = node.create_publisher(Image, "/camera/front/image_raw", 10)
    info_pub = node.create_publisher(CameraInfo, "/camera/front/camera_info", 10)
    deadline = time.monotonic() + args.timeout
    status = 1
    try:
        print(f"hydranet demo: started hydranet_node (pid {node_proc.pid}); waiting for it to subscribe ...")
        while image_pub.get_subscription_count() < 1:
            if node_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hydranet_node did not subscribe to /camera/front/image_raw")
            rclpy.spin_once(node, timeout_sec=0.1)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

        def frames_seen() -> bool:
            return any(kv.key == "frames_received" and kv.value != "0"
                       for a in received for st in a.status for kv in st.values)

        # Live mode takes input best effort: a frame can be lost, so send it again until the node says
        # it got one (at 2 Hz, well under any camera's rate).
        sent, next_send = 0, 0.0
        while not frames_seen():
            if node_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hydranet_node did not report the frame on /diagnostics")
            if time.monotonic() >= next_send:
                header = Header(stamp=node.get_clock().now().to_msg(), frame_id="camera_front_optical")
                image_pub.publish(numpy_to_image(rgb, "rgb8", header))
                info_pub.publish(camera_info_from_json(args.intrinsics, rgb.shape[1], rgb.shape[0], header))
                sent, next_send = sent + 1, time.monotonic() + 0.5
            rclpy.spin_once(node, timeout_sec=0.05)
        print(f"hydranet demo: published {args.image.name} ({rgb.shape[1]}x{rgb.shape[0]} rgb8) on "
              f"/camera/front/image_raw ({sent}x)")
        print("hydranet demo: hydranet_node published on /diagnostics:")
        _print_diagnostics(received[-1])
        status = 0
    except RuntimeError as exc:
        print(f"hydranet demo: FAILED: {exc}", file=sys.stderr)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        if node_proc.poll() is None:
            node_proc.send_signal(signal.SIGINT)
            try:
                node_proc.wait(10)
            except subprocess.TimeoutExpired:
                node_proc.kill()
        print("hydranet demo: hydranet_node said:")
        for line in node_log.read_text(errors="replace").splitlines():
            print(f"  {line}")
    return status
