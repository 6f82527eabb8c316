"""hydranet demo: start hydranet_node as its own process, feed it real frames, show every output it publishes.

The node runs in its own process on real DDS (localhost only, a random domain), exactly as on a vehicle; this
process plays the camera (Image + CameraInfo) and subscribes to every output. It prints a table of what arrived
(type, size, encoding, header) and the node's /diagnostics, and writes the overlay and a depth colour map as PNGs.
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
DEFAULT_IMAGES = [SAMPLES / "project_video_0750.jpg", SAMPLES / "project_video_1050.jpg"]
DEFAULT_INTRINSICS = SAMPLES / "udacity_camera_intrinsics.json"
FRAME_ID = "camera_front_optical"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", type=Path, action="append", default=None,
                   help="frame(s) to feed the node, repeatable (default: the two shipped Udacity frames)")
    p.add_argument("--intrinsics", type=Path, default=DEFAULT_INTRINSICS,
                   help="intrinsics JSON for the CameraInfo (default: the Udacity camera's)")
    p.add_argument("--model", type=Path, default=None,
                   help="model .onnx (default: the package's default model; if it is missing, the default spec "
                        "is exported with untrained heads, and the demo says so)")
    p.add_argument("--out", type=Path, default=Path("demo_out"),
                   help="folder for the overlay and depth PNGs (default: %(default)s)")
    p.add_argument("--domain-id", type=int, default=None,
                   help="ROS_DOMAIN_ID to use (default: a random one, so the demo is isolated)")
    p.add_argument("--timeout", type=float, default=90.0, help="give up after this many seconds (default: %(default)s)")


def _model(path: Path | None) -> tuple[Path, str]:
    """The model to run and a note about it."""
    from hydranet_ros.runtime.contract import default_model_path

    if path is not None:
        return path, ""
    default = default_model_path()
    if default.is_file():
        return default, ""
    from hydranet_ros.model.export import export_onnx
    from hydranet_ros.model.spec import load_spec
    from hydranet_ros.ros.params import config_file

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hydranet_ros" / "untrained"
    out = cache / "hydranet_effl0_road_untrained.onnx"
    if not out.is_file():
        print(f"hydranet demo: no trained model at {default}; exporting the default spec with UNTRAINED heads "
              f"to {out} (the outputs will be arbitrary) ...", flush=True)
        export_onnx(load_spec(config_file("models/hydranet_effl0_road.yaml")), out)
    return out, "UNTRAINED heads: the outputs show the plumbing, not perception"


def _level(st) -> str:
    level = int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level)
    return {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}.get(level, "?")


def _describe(msg) -> str:
    """One line about a message: what a user checks first."""
    kind = type(msg).__name__
    if kind == "Image":
        return f"{msg.width}x{msg.height} {msg.encoding}"
    if kind == "CameraInfo":
        return f"{msg.width}x{msg.height} fx={msg.k[0]:.1f} cx={msg.k[2]:.1f}"
    if kind == "Detection2DArray":
        top = ", ".join(f"{d.results[0].hypothesis.class_id} {d.results[0].hypothesis.score:.2f}"
                        for d in msg.detections[:3])
        return f"{len(msg.detections)} boxes{': ' + top if top else ''}"
    if kind == "Detection3DArray":
        return f"{len(msg.detections)} located objects"
    if kind == "PointCloud2":
        return f"{msg.width} points, fields {','.join(f.name for f in msg.fields)}"
    if kind == "MarkerArray":
        return f"{len(msg.markers)} markers"
    if kind == "LabelInfo":
        return "classes " + ", ".join(c.class_name for c in msg.class_map)
    return kind


def run(args: argparse.Namespace) -> int:
    import cv2

    images = args.image or DEFAULT_IMAGES
    frames = []
    for path in images:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            print(f"hydranet demo: cannot read image {path}", file=sys.stderr)
            return 2
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    model, note = _model(args.model)
    domain = args.domain_id if args.domain_id is not None else random.randint(1, 200)
    log_dir = Path(tempfile.mkdtemp(prefix="hydranet_demo_"))
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(log_dir))

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
    from visualization_msgs.msg import MarkerArray

    from hydranet_ros.ros.convert import camera_info_from_json, image_to_numpy, numpy_to_image
    from hydranet_ros.ros.dds import use_shm_profile
    from hydranet_ros.runtime.overlay import colourise_depth

    use_shm_profile()  # before the node starts: it inherits this environment
    print(f"hydranet demo: ROS_DOMAIN_ID={domain}, discovery on localhost only, logs in {log_dir}")
    node_log = log_dir / "hydranet_node.out"
    with open(node_log, "wb") as out:
        node_proc = subprocess.Popen([sys.executable, "-m", "hydranet_ros.ros.node", "--ros-args", "-p",
                                      f"model:={model}"], env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("hydranet_demo")
    base = "/hydranet/front"
    outputs = {f"{base}/drivable_area": Image, f"{base}/lane_lines": Image, f"{base}/depth": Image,
               f"{base}/depth/camera_info": CameraInfo, f"{base}/detections": Detection2DArray,
               f"{base}/overlay": Image, f"{base}/points": PointCloud2, f"{base}/detections_3d": Detection3DArray,
               f"{base}/markers": MarkerArray}
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    labels = {f"{base}/{t}/label_info": LabelInfo for t in ("drivable_area", "lane_lines", "detections")}
    got: dict[str, list] = {t: [] for t in [*outputs, *labels]}
    for topic, msg_type in outputs.items():
        node.create_subscription(msg_type, topic, got[topic].append, 10)
    for topic, msg_type in labels.items():
        node.create_subscription(msg_type, topic, got[topic].append, latched)
    diagnostics: list = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, "/camera/front/image_raw", reliable)
    info_pub = node.create_publisher(CameraInfo, "/camera/front/camera_info", reliable)
    deadline = time.monotonic() + args.timeout
    status = 1
    try:
        print(f"hydranet demo: started hydranet_node (pid {node_proc.pid}) with {model.name}; waiting for it ...")
        while image_pub.get_subscription_count() < 1:
            if node_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hydranet_node did not subscribe to /camera/front/image_raw")
            rclpy.spin_once(node, timeout_sec=0.1)
        sent: dict[int, Path] = {}
        for i, (path, rgb) in enumerate(zip(images, frames, strict=True)):
            header = Header(stamp=node.get_clock().now().to_msg(), frame_id=FRAME_ID)
            info_pub.publish(camera_info_from_json(args.intrinsics, rgb.shape[1], rgb.shape[0], header))
            rclpy.spin_once(node, timeout_sec=0.2)  # the calibration first, so that depth uses it
            image_pub.publish(numpy_to_image(rgb, "rgb8", header))
            sent[header.stamp.sec * 10**9 + header.stamp.nanosec] = path
            n = i + 1  # wait for this frame's results before the next: the demo shows every frame
            while not all(len(v) >= n for t, v in got.items() if t not in labels):
                if node_proc.poll() is not None or time.monotonic() > deadline:
                    missing = [t for t, v in got.items() if len(v) < n]
                    raise RuntimeError(f"no output on {', '.join(missing)}")
                rclpy.spin_once(node, timeout_sec=0.05)
        end = time.monotonic() + 1.5  # one more /diagnostics period
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)

        print(f"hydranet demo: sent {len(frames)} frame(s) on /camera/front/image_raw; the node published:")
        width = max(len(t) for t in got)
        for topic, msgs in got.items():
            m = msgs[-1] if msgs else None
            header = getattr(m, "header", None)
            stamp_ok = header is not None and header.stamp.sec * 10**9 + header.stamp.nanosec in sent
            tag = "camera's stamp" if stamp_ok else ""
            print(f"  {topic:<{width}}  {type(m).__name__ if m else '-':<17} {_describe(m) if m else 'nothing'}"
                  f"{'  [' + tag + ']' if tag else ''}")
        args.out.mkdir(parents=True, exist_ok=True)
        overlay = got[f"{base}/overlay"][-1]
        cv2.imwrite(str(args.out / "overlay.png"), cv2.cvtColor(image_to_numpy(overlay), cv2.COLOR_RGB2BGR))
        d = got[f"{base}/depth"][-1]
        cv2.imwrite(str(args.out / "depth.png"), cv2.cvtColor(colourise_depth(image_to_numpy(d)), cv2.COLOR_RGB2BGR))
        print(f"hydranet demo: wrote {args.out / 'overlay.png'} and {args.out / 'depth.png'}")
        # The last report of a period in which frames were processed (later ones say "no frames").
        busy = [a for a in diagnostics if any(kv.key == "latency_infer_ms" and kv.value != "n/a"
                                              for st in a.status for kv in st.values)]
        if busy:
            print("hydranet demo: /diagnostics while it worked:")
            for st in busy[-1].status:
                print(f"  [{_level(st)}] {st.name}: {st.message}")
                for kv in st.values:
                    if kv.key.startswith(("latency_", "age_", "published_total", "engine", "model")) and \
                            not kv.key.endswith("_max"):
                        print(f"      {kv.key} = {kv.value}")
        if note:
            print(f"hydranet demo: NOTE: {note}")
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
