"""hydranet visualize: the visual report of a bag holding hydranet_node's outputs (video, contact sheet, latency).

Run it on any bag recorded with the node running: `hydranet visualize drive/` writes drive_report/ beside it with
report.mp4, contact_sheet.png (look at this first), summary.md and summary.json (hydranet_ros/bags/report/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", type=Path, help="rosbag2 folder (or .mcap / .db3 file) with the node's outputs")
    p.add_argument("-o", "--out", type=Path,
                   help="report folder (default: <bag>_report beside the bag, e.g. drive/ -> drive_report/)")
    p.add_argument("--camera", help="camera name (front) or output base (/hydranet/front); default: the first")
    p.add_argument("--image-topic", help="camera image topic (Image or CompressedImage); default: the image topic "
                   "whose stamps match the outputs")
    p.add_argument("--rows", type=int, default=6, help="frames on the contact sheet (default: %(default)s)")
    p.add_argument("--fps", type=float, help="video frame rate (default: the camera's, at most 30)")
    p.add_argument("--max-depth", type=float, default=80.0,
                   help="far (blue) end of the depth colour map, metres (default: %(default)s)")
    p.add_argument("--min-depth", type=float, default=3.0,
                   help="near (red) end of the depth colour map, metres (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def default_out(bag: Path) -> Path:
    """drive/ -> drive_report/, drive.mcap -> drive_report/, beside the bag."""
    bag = bag.resolve()
    return bag.parent / f"{bag.stem if bag.is_file() else bag.name}_report"


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.bags.report import render_report
    from hydranet_ros.bags.rosbag import BagError

    if args.rows < 1 or (args.fps is not None and args.fps <= 0) or not 0 < args.min_depth < args.max_depth:
        print("hydranet visualize: --rows must be >= 1, --fps > 0 and 0 < --min-depth < --max-depth", file=sys.stderr)
        return 2
    out = args.out or default_out(args.bag)
    try:
        report = render_report(args.bag, out, camera=args.camera, image_topic=args.image_topic, sheet_rows=args.rows,
                               fps=args.fps, max_depth=args.max_depth, min_depth=args.min_depth,
                               progress=not args.quiet)
    except BagError as exc:
        print(f"hydranet visualize: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, no traceback
        return 2
    print(report.text)
    print(f"hydranet visualize: report in {report.folder} (open {report.sheet.name} first)")
    return 0
