"""hydranet import KIND SRC -o OUT.jsonl: a dataset (sim, KITTI, BDD100K) or raw frames -> a training manifest.

Labels point at the dataset's own files (a "map" on the original PNG, no converted copies); only video and bag
frames are written out, as JPEGs. --val-fraction writes a second manifest, OUT_val.jsonl, of whole episodes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hydranet_ros.tools.argtypes import positive_int

KINDS = ("sim", "kitti", "bdd100k", "frames")
TASK_ORDER = ("drivable_area", "lane_lines", "depth", "detections")  # the default model's heads, as it lists them


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("examples:\n"
                "  hydranet import sim ../shared/assets/sim -o data/sim.jsonl --val-fraction 0.15\n"
                "  hydranet import kitti kitti/training -o data/kitti.jsonl\n"
                "  hydranet import kitti ../shared/assets/kitti101 --split train -o data/kitti101_train.jsonl\n"
                "  hydranet import bdd100k labels/det_20/det_train.json --images images/100k/train \\\n"
                "      --drivable labels/drivable/masks/train -o data/bdd_train.jsonl\n"
                "  hydranet import frames drive.mp4 --every 10 --intrinsics camera.json -o data/drive.jsonl\n"
                "  hydranet import frames my_bag/ --topic /cam/image_raw -o data/bag.jsonl")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("kind", choices=KINDS, help="what SRC is")
    p.add_argument("src", nargs="?", type=Path,
                   help="sim: the dataset folder (dataset.json, frames.jsonl); kitti: the folder holding image_2/, "
                        "calib/, label_2/ (optional), sparse_depth/ (optional); bdd100k: the detection JSON "
                        "(det_20 or 2018 format, or a folder of per-image JSONs; optional); frames: an image "
                        "folder, a video file, or a rosbag2 bag (folder, .mcap or .db3)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="manifest to write (JSONL); paths in it are relative to its folder where possible")
    p.add_argument("--val-fraction", type=_fraction, default=0.0, metavar="F",
                   help="put this fraction of the episodes (whole sequences) into OUT_val.jsonl (default: 0)")
    p.add_argument("--source", help="the samples' source name (default: the kind, or the video/bag/folder name)")
    p.add_argument("--intrinsics", type=Path, metavar="JSON",
                   help="frames, bdd100k: camera intrinsics JSON (K, image_size_wh), scaled to each image's size; "
                        "a bag's CameraInfo takes precedence")
    g = p.add_argument_group("kitti")
    g.add_argument("--split", choices=("train", "val"),
                   help="only the frames SRC/split.json lists under this name (default: every frame; frames listed "
                        "as val are still marked held out, and training refuses them)")
    g = p.add_argument_group("bdd100k")
    g.add_argument("--images", type=Path, metavar="DIR", help="the images (e.g. bdd100k/images/100k/train)")
    g.add_argument("--drivable", type=Path, metavar="DIR",
                   help="2020 drivable id masks, <image stem>.png (e.g. labels/drivable/masks/train)")
    g = p.add_argument_group("frames")
    g.add_argument("--every", type=positive_int, default=1, metavar="N", help="keep every N-th frame (default: 1)")
    g.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    g.add_argument("--recursive", action="store_true", help="image folder: include sub-folders")
    g.add_argument("--frames-dir", type=Path, metavar="DIR",
                   help="where video/bag frames go (default: OUT's folder/<video or bag name>_frames; a bag's "
                        "frames go into a sub-folder named after the topic)")
    g.add_argument("--topic", help="bag: the Image or CompressedImage topic (optional if there is only one)")
    g.add_argument("--camera-info-topic", help="bag: CameraInfo topic (default: the one beside the image topic)")


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.core import frames
    from hydranet_ros.train import importers
    from hydranet_ros.train.manifest import write_manifest

    try:
        samples, frames_dir = _import(args, importers)
        train, val = importers.split_by_episode(samples, args.val_fraction)
        outputs = [(args.output, train)]
        if val:
            outputs.append((args.output.with_name(f"{args.output.stem}_val.jsonl"), val))
        for path, part in outputs:
            write_manifest(path, part)
            _print_summary(path, importers.summarize(part))
    except (frames.FrameSourceError, OSError) as exc:
        print(f"hydranet import: {exc}", file=sys.stderr)
        return 2
    if frames_dir is not None:
        print(f"frames in {frames_dir}")
    return 0


# Options that only some kinds read: given to another kind they would be ignored silently, so they are refused.
KIND_OPTIONS = {
    "intrinsics": ("frames", "bdd100k"), "split": ("kitti",), "images": ("bdd100k",), "drivable": ("bdd100k",),
    "max_frames": ("frames",), "frames_dir": ("frames",), "topic": ("frames",), "camera_info_topic": ("frames",),
}


def _check_options(args: argparse.Namespace, error: type[Exception]) -> None:
    if args.src is None and args.kind != "bdd100k":
        raise error(f"{args.kind} needs SRC")
    for option, kinds in KIND_OPTIONS.items():
        if getattr(args, option) is not None and args.kind not in kinds:
            raise error(f"--{option.replace('_', '-')} applies to {' and '.join(kinds)}, not to {args.kind}")


def _import(args: argparse.Namespace, importers: Any) -> tuple[list[Any], Path | None]:
    """The samples of args.kind, and the folder frames were written to (None: nothing written)."""
    from hydranet_ros.core import frames

    _check_options(args, importers.ImportDataError)
    camera = frames.read_intrinsics_json(args.intrinsics) if args.intrinsics else None
    if args.kind == "sim":
        return importers.import_sim(args.src, source=args.source or "sim"), None
    if args.kind == "kitti":
        return importers.import_kitti(args.src, source=args.source or "kitti", split=args.split or "all"), None
    if args.kind == "bdd100k":
        if args.images is None:
            raise importers.ImportDataError("bdd100k needs --images DIR")
        return importers.import_bdd100k(args.images, detections=args.src, drivable=args.drivable,
                                        intrinsics=camera, source=args.source or "bdd100k"), None
    return _import_frames(args, importers, camera)


def _import_frames(args: argparse.Namespace, importers: Any, camera: Any) -> tuple[list[Any], Path | None]:
    from hydranet_ros.core import frames

    kind = frames.frames_kind(args.src)
    common = {"every": args.every, "max_frames": args.max_frames, "intrinsics": camera, "source": args.source}
    if kind == "folder":
        return importers.import_image_folder(args.src, recursive=args.recursive, **common), None
    frames_dir = args.frames_dir or args.output.parent / f"{args.src.stem}_frames"
    if kind == "video":
        return importers.import_video(args.src, frames_dir, progress=True, **common), frames_dir
    return importers.import_bag(args.src, frames_dir, topic=args.topic, camera_info_topic=args.camera_info_topic,
                                progress=True, **common), frames_dir


def _print_summary(path: Path, summary: dict[str, Any]) -> None:
    n = summary["samples"]
    print(f"wrote {n} samples to {path}")
    order = {task: i for i, task in enumerate(TASK_ORDER)}
    for task, count in sorted(summary["tasks"].items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        line = f"  {task:<14} {count:>6} labelled"
        if task == "detections":
            boxes = sorted(summary["boxes"].items())
            line += ": " + (", ".join(f"{count} {cls}" for cls, count in boxes) or "no boxes")
        print(line)
    print(f"  {'intrinsics':<14} {summary['intrinsics']:>6} of {n}")
