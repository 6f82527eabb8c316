"""hydranet make-bag SOURCE -o OUT: a video or an image folder -> a rosbag2 camera bag (Image or CompressedImage,
+ CameraInfo), as `ros2 bag record` of a camera driver would hold it. No ROS needed to run it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydranet_ros.tools.argtypes import non_negative_int, positive_int


def _size(text: str) -> tuple[int, int]:
    from hydranet_ros.bags.make_bag import MakeBagError, parse_size

    try:
        return parse_size(text)
    except MakeBagError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("examples:\n"
                "  hydranet make-bag drive.mp4 -o drive_bag --intrinsics camera.json\n"
                "  hydranet make-bag drive.mp4 -o drive_bag --compressed --every 2 --resize 640x360\n"
                "  hydranet make-bag frames/ -o frames_bag --compressed --rate 15\n"
                "\n"
                "Raw frames go on TOPIC as sensor_msgs/Image rgb8 (what a camera driver's image_raw carries);\n"
                "--compressed writes sensor_msgs/CompressedImage \"jpeg\" on TOPIC/compressed instead, as\n"
                "image_transport names it (a folder's JPEG files are copied unchanged unless --resize is given).\n"
                "CameraInfo goes on the topic's namespace/camera_info, only with --intrinsics: a guessed\n"
                "calibration would look like a measured one to everything downstream.\n"
                "Header stamps equal the bag's timestamps: START + i / RATE.")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("source", type=Path, help="a video file, or a folder of jpg/png images (natural order: 2 before 10)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the rosbag2 folder to create")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing bag")
    p.add_argument("--compressed", action="store_true",
                   help="write sensor_msgs/CompressedImage JPEG on TOPIC/compressed (default: raw Image rgb8)")
    p.add_argument("--jpeg-quality", type=int, default=90, metavar="Q",
                   help="JPEG quality 1-100 for --compressed (default: %(default)s)")
    p.add_argument("--rate", type=float, metavar="HZ",
                   help="frames per second in the bag (default: the video's fps / --every; 10 for images)")
    p.add_argument("--every", type=positive_int, default=1, metavar="N", help="keep every N-th frame (default: 1)")
    p.add_argument("--start-frame", type=non_negative_int, default=0, metavar="I",
                   help="skip the first I frames (or images) of SOURCE (default: 0)")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--resize", type=_size, metavar="WxH", help="resize frames (CameraInfo is scaled to match)")
    p.add_argument("--topic", default="/camera/front/image_raw", help="image topic (default: %(default)s)")
    p.add_argument("--frame-id", default="camera_front_optical", help="header.frame_id (default: %(default)s)")
    p.add_argument("--intrinsics", type=Path, metavar="JSON",
                   help="camera intrinsics (K, image_size_wh, dist_k1k2p1p2k3; see "
                        "hydranet_ros/samples/udacity_camera_intrinsics.json) -> CameraInfo, scaled to the frames")
    p.add_argument("--start-time", type=float, metavar="SEC",
                   help="stamp of the first frame, seconds since 1970 (default: now); fix it for a reproducible bag")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (default: mcap)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.bags.make_bag import MakeBagError, make_camera_bag
    from hydranet_ros.bags.rosbag import BagError

    try:
        summary = make_camera_bag(
            args.source, args.output, compressed=args.compressed, rate=args.rate, every=args.every,
            start_frame=args.start_frame, max_frames=args.max_frames, resize=args.resize, frame_id=args.frame_id,
            topic=args.topic, intrinsics=args.intrinsics, jpeg_quality=args.jpeg_quality,
            start_time=args.start_time, storage=args.storage, progress=not args.quiet, force=args.force)
    except (MakeBagError, BagError, OSError) as exc:
        print(f"hydranet make-bag: {exc}", file=sys.stderr)
        return 2
    w, h = summary.image_size
    print(f"wrote {summary.path} ({summary.storage}, {summary.size_bytes / 1e6:.2f} MB): {summary.frames} frames "
          f"{w}x{h}, {summary.duration_s:.3f} s at {summary.rate_hz:g} Hz")
    width, type_width = max(map(len, summary.topics)), max(map(len, summary.topics.values()))
    for topic, msgtype in summary.topics.items():
        print(f"  {topic:<{width}}  {msgtype:<{type_width}}  {summary.frames} messages")
    return 0
