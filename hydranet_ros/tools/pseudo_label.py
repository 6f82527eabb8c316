"""hydranet pseudo-label MANIFEST -o OUT_DIR: teacher models label raw frames (drivable area, lane lines, boxes)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Kinds of pseudo-label, by their default task names. Defaults below repeat teachers.py's constants so that
# `hydranet --help` does not import OpenCV; test_teachers.py checks that they agree.
KINDS = ("drivable_area", "lane_lines", "detections")
SEG_KINDS = ("drivable_area", "lane_lines")
TEACHER_OUTPUT = {"drivable_area": "drivable", "lane_lines": "lane"}  # TwinLiteNet's output per kind
DETECTORS = ("fastestdet", "picodet", "both")
DEFAULTS = {"threshold": 0.5, "low_threshold": 0.3, "nms_iou": 0.5, "seg_hi": 0.6, "seg_lo": 0.4, "rider_cover": 0.5}

EPILOG = """\
what it does:
  Runs the teachers on every frame of MANIFEST and adds the labels its tasks
  lack (all of them with --overwrite):
  - drivable area, lane lines: TwinLiteNet (BDD100K), PNGs under OUT_DIR/<task>/
    at the frame's size: 1 = positive, 0 = negative, 255 = ignore (unsure);
  - detections: PicoDet-S and/or FastestDet (COCO), mapped to vehicle,
    pedestrian, cyclist, inline in the manifest; boxes scoring between
    --low-threshold and --threshold become "ignore" (don't-care) regions.
  Writes OUT_DIR/manifest.jsonl: the input with those labels added, and under
  "pseudo_labels" in each frame the teachers and thresholds used.

teacher files:
  Under $HYDRANET_ASSETS, else ../shared/assets beside the repository (see its
  MANIFEST.md); each one can be given by its own flag.

example:
  hydranet pseudo-label raw/manifest.jsonl -o data/pseudo --detector both
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("manifest", type=Path, help="input manifest (JSONL): the frames to label")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR",
                   help="folder for the label PNGs and the output manifest.jsonl")
    p.add_argument("--tasks", default=",".join(KINDS), metavar="LIST",
                   help="which labels to make, comma-separated (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace labels the input already has for these tasks (default: keep them)")

    t = p.add_argument_group("teachers")
    t.add_argument("--detector", choices=DETECTORS, default="picodet",
                   help="COCO detector for boxes; 'both' pools their boxes (default: %(default)s)")
    t.add_argument("--tiles", type=int, default=0, metavar="N",
                   help="also run the detectors on N overlapping square crops across frames wider than 1.4:1 (the "
                        "square input squashes them; measured on kitti101 train with PicoDet-S and 4 crops: vehicle "
                        "recall 0.63 -> 0.70 at precision 0.9, pedestrians unchanged at precision 0.85; thresholds "
                        "shift up, measure them with bench/teacher_thresholds.py --tiles N); 0: off (default)")
    t.add_argument("--seg-size", default="640x360", metavar="WxH",
                   help="TwinLiteNet input size, multiples of 8; it was trained at %(default)s (default)")
    t.add_argument("--threads", type=int, default=2, metavar="N",
                   help="ONNX Runtime threads per teacher (default: %(default)s)")
    t.add_argument("--assets", type=Path, metavar="DIR",
                   help="assets folder holding weights/ and teachers/ (default: $HYDRANET_ASSETS or ../shared/assets)")
    t.add_argument("--twinlitenet-model", type=Path, metavar="ONNX",
                   help="TwinLiteNet (default: ASSETS/weights/twinlitenet_da_ll_dynamic.onnx)")
    t.add_argument("--picodet-model", type=Path, metavar="ONNX",
                   help="PicoDet-S 416 (default: ASSETS/teachers/picodet_s/picodet_s_416_coco_clean.onnx)")
    t.add_argument("--fastestdet-model", type=Path, metavar="ONNX",
                   help="FastestDet (default: ASSETS/teachers/fastestdet/FastestDet.onnx)")
    t.add_argument("--coco-names", type=Path, metavar="FILE",
                   help="the detectors' class names (default: ASSETS/teachers/coco80.names)")

    c = p.add_argument_group("confidence")
    c.add_argument("--threshold", type=float, default=DEFAULTS["threshold"], metavar="SCORE",
                   help="box score from which a box is a label (default: %(default)s)")
    c.add_argument("--low-threshold", type=float, default=DEFAULTS["low_threshold"], metavar="SCORE",
                   help="box score from which a box is an 'ignore' region; below it, background (default: %(default)s)")
    c.add_argument("--class-thresholds", type=parse_class_thresholds, default={}, metavar="CLS=HI:LO,...",
                   help="per-class --threshold:--low-threshold, e.g. pedestrian=0.55:0.35,cyclist=1:0.25 (a "
                        "threshold of 1 makes every box of the class a don't-care region); measure them with "
                        "bench/teacher_thresholds.py")
    c.add_argument("--nms-iou", type=float, default=DEFAULTS["nms_iou"], metavar="IOU",
                   help="IoU above which two boxes of a class are one object (default: %(default)s)")
    c.add_argument("--seg-hi", type=float, default=DEFAULTS["seg_hi"], metavar="P",
                   help="probability from which a pixel is drivable / lane (default: %(default)s)")
    c.add_argument("--seg-lo", type=float, default=DEFAULTS["seg_lo"], metavar="P",
                   help="probability up to which a pixel is background; between, ignore (default: %(default)s)")
    c.add_argument("--class-map", metavar="COCO=OURS,...",
                   help="COCO classes to keep and their new names; the others are dropped (default: "
                        "car=vehicle,bus=vehicle,truck=vehicle,person=pedestrian,bicycle=cyclist,"
                        "motorbike=cyclist)")
    c.add_argument("--rider-cover", type=float, default=DEFAULTS["rider_cover"], metavar="FRACTION",
                   help="a person whose box's lower half is covered this much by a bike box is, with the bike, "
                        "one cyclist; 0 turns this off (default: %(default)s)")

    n = p.add_argument_group("task names in the output manifest")
    n.add_argument("--drivable-task", default="drivable_area", metavar="NAME", help="(default: %(default)s)")
    n.add_argument("--lane-task", default="lane_lines", metavar="NAME", help="(default: %(default)s)")
    n.add_argument("--detection-task", default="detections", metavar="NAME", help="(default: %(default)s)")


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--seg-size {text!r} is not WxH") from None
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise ValueError(f"--seg-size {text}: width and height must be positive multiples of 8")
    return w, h


def parse_tasks(args: argparse.Namespace) -> list[str]:
    """--tasks -> kinds (KINDS order); a kind may be named by its default name or by its --*-task name."""
    names = {"drivable_area": args.drivable_task, "lane_lines": args.lane_task, "detections": args.detection_task}
    lookup = {**{v: k for k, v in names.items()}, **{k: k for k in KINDS}}
    asked = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in asked if t not in lookup]
    if unknown or not asked:
        raise ValueError(f"--tasks {args.tasks!r}: choose from {', '.join(KINDS)}")
    return [k for k in KINDS if k in {lookup[t] for t in asked}]


def parse_class_thresholds(text: str) -> dict[str, tuple[float, float]]:
    """'pedestrian=0.55:0.35,cyclist=1:0.25' -> {"pedestrian": (0.55, 0.35), "cyclist": (1.0, 0.25)}."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        cls, _, band = item.partition("=")
        hi, _, lo = band.partition(":")
        try:
            out[cls.strip()] = (float(hi), float(lo))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: expected CLASS=THRESHOLD:LOW_THRESHOLD") from None
    return out


def lowest_threshold(args: argparse.Namespace) -> float:
    """The lowest score any class keeps (as a label or a don't-care region): the detectors' cut-off."""
    return min([args.low_threshold] + [lo for _, lo in args.class_thresholds.values()])


def check_thresholds(args: argparse.Namespace) -> None:
    for where, (hi, lo) in {"": (args.threshold, args.low_threshold), **args.class_thresholds}.items():
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"need 0 <= low threshold <= threshold <= 1, got {lo} and {hi}"
                             + (f" for {where}" if where else ""))
    if not 0.0 <= args.seg_lo <= args.seg_hi <= 1.0:
        raise ValueError(f"need 0 <= --seg-lo <= --seg-hi <= 1, got {args.seg_lo} and {args.seg_hi}")
    if not 0.0 < args.nms_iou <= 1.0 or not 0.0 <= args.rider_cover <= 1.0:
        raise ValueError("--nms-iou must be in (0, 1] and --rider-cover in [0, 1]")
    if args.threads < 1:
        raise ValueError("--threads must be at least 1")
    if args.tiles < 0 or args.tiles == 1:
        raise ValueError(f"--tiles must be 0 (off) or at least 2, got {args.tiles}")


def teacher_files(args: argparse.Namespace, kinds: list[str]) -> dict[str, Path]:
    """The teacher files these kinds need, each checked (TeacherFileError names the file and its flag)."""
    from hydranet_ros.train.teachers import ASSET_FILES, ASSETS_ENV, default_asset, require_file

    wanted = []
    if any(k in SEG_KINDS for k in kinds):
        wanted.append("twinlitenet")
    if "detections" in kinds:
        wanted += ["coco_names"] + (["fastestdet", "picodet"] if args.detector == "both" else [args.detector])
    files = {}
    for key in wanted:
        flag = "--coco-names" if key == "coco_names" else f"--{key}-model"
        given = getattr(args, flag[2:].replace("-", "_"))
        if given:
            files[key] = require_file(given, f"check {flag}")
        else:
            hint = f"give it with {flag}, or the folder holding {ASSET_FILES[key]} with --assets or ${ASSETS_ENV}"
            files[key] = require_file(default_asset(key, args.assets), hint)
    return files


def image_key(image: Path) -> str:
    """A short, stable tag of an image's path: frames named alike in different folders get different PNGs."""
    import hashlib

    return hashlib.sha1(str(Path(image).resolve()).encode()).hexdigest()[:8]


class Labeller:
    """Runs the teachers on one sample at a time and adds the labels it lacks; keeps the run's statistics."""

    def __init__(self, args: argparse.Namespace, kinds: list[str], files: dict[str, Path]) -> None:
        from hydranet_ros.train import teachers as T

        self.T = T
        self.args = args
        self.kinds = kinds
        self.task = {"drivable_area": args.drivable_task, "lane_lines": args.lane_task,
                     "detections": args.detection_task}
        self.seg = self.road = None
        if "twinlitenet" in files:
            self.seg = T.TwinLiteNet(files["twinlitenet"], parse_size(args.seg_size), args.threads)
        if "coco_names" in files:
            names = T.load_names(files["coco_names"])
            detectors = [cls(files[key], names, args.threads, lowest_threshold(args), args.nms_iou, tiles=args.tiles)
                         for key, cls in (("fastestdet", T.FastestDet), ("picodet", T.PicoDetS)) if key in files]
            mapping = (T.ClassMapping.parse(args.class_map, args.rider_cover) if args.class_map
                       else T.ClassMapping(rider_cover=args.rider_cover))
            self.road = T.RoadDetector(detectors, mapping, args.nms_iou)
            unknown = sorted(set(args.class_thresholds) - set(mapping.coco.values()))
            if unknown:  # a typo would silently leave that class at the default band
                raise ValueError(f"--class-thresholds names {', '.join(unknown)}, which the class map does not "
                                 f"produce (classes: {', '.join(sorted(set(mapping.coco.values())))})")
        self.labelled: Counter[str] = Counter()  # kind -> frames given a new label
        self.fractions: dict[str, list[float]] = {k: [] for k in SEG_KINDS}
        self.boxes: Counter[str] = Counter()
        self.kept = 0  # frames that had every label already
        self.bad: list[str] = []

    def teachers(self) -> list[Any]:
        return ([self.seg] if self.seg else []) + (self.road.teachers if self.road else [])

    def label(self, sample: Any) -> None:
        todo = [k for k in self.kinds if self.args.overwrite or self.task[k] not in sample.labels]
        if not todo:
            self.kept += 1
            return
        rgb = self.T.read_rgb(sample.image)
        if rgb is None:
            self.bad.append(f"cannot read {sample.image}")
            return
        height, width = rgb.shape[:2]
        if sample.size is not None and tuple(sample.size) != (width, height):
            self.bad.append(f"{sample.image} is {width}x{height}, the manifest says {sample.size[0]}x{sample.size[1]}")
            return
        sample.size = (width, height)
        record = {}
        if any(k in SEG_KINDS for k in todo):
            record.update(self._segmentation(sample, rgb, [k for k in todo if k in SEG_KINDS]))
        if "detections" in todo:
            record.update(self._detections(sample, rgb))
        sample.extra["pseudo_labels"] = {**sample.extra.get("pseudo_labels", {}), **record}

    def _segmentation(self, sample: Any, rgb: Any, kinds: list[str]) -> dict[str, Any]:
        import cv2

        probs = self.seg(rgb)
        record = {}
        for kind in kinds:
            task = self.task[kind]
            label = self.T.probability_to_label(probs[TEACHER_OUTPUT[kind]], self.args.seg_hi, self.args.seg_lo)
            path = self.args.output / task / f"{sample.image.stem}-{image_key(sample.image)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), label):
                raise OSError(f"cannot write {path}")
            sample.labels[task] = {"file": path}
            self.fractions[kind].append(float((label == 1).mean()))
            self.labelled[kind] += 1
            record[task] = {**self.seg.describe(), "output": TEACHER_OUTPUT[kind], "hi": self.args.seg_hi,
                            "lo": self.args.seg_lo}
        return record

    def _detections(self, sample: Any, rgb: Any) -> dict[str, Any]:
        boxes = self.T.label_boxes(self.road(rgb), self.args.threshold, self.args.low_threshold, self.args.nms_iou,
                                   per_class=self.args.class_thresholds)
        task = self.task["detections"]
        sample.labels[task] = {"boxes": boxes}
        self.boxes.update(b[4] for b in boxes)
        self.labelled["detections"] += 1
        return {task: {**self.road.describe(), "threshold": self.args.threshold,
                       "low_threshold": self.args.low_threshold,
                       **({"class_thresholds": {c: list(b) for c, b in self.args.class_thresholds.items()}}
                          if self.args.class_thresholds else {})}}

    def summary(self, total: int, manifest: Path) -> str:
        lines = [f"{total} frames -> {manifest} ({self.kept} already had every label"
                 + (f", {len(self.bad)} skipped" if self.bad else "") + ")"]
        for kind in self.kinds:
            task, n = self.task[kind], self.labelled[kind]
            if kind in SEG_KINDS:
                mean = sum(self.fractions[kind]) / n if n else float("nan")
                lines.append(f"  {task}: {n} new PNGs, mean {TEACHER_OUTPUT[kind]} fraction {mean:.3f}")
            else:
                per_class = ", ".join(f"{c} {k}" for c, k in sorted(self.boxes.items())) or "none"
                lines.append(f"  {task}: {n} frames labelled, boxes: {per_class}")
        timed = [f"{t.name} {t.ms_per_image:.0f}" for t in self.teachers() if t.calls]
        if timed:
            lines.append(f"  ms per frame ({self.args.threads} threads): {', '.join(timed)}")
        return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hydranet_ros.core.progress import show_progress
    from hydranet_ros.train.manifest import ManifestError, read_manifest, write_manifest
    from hydranet_ros.train.teachers import TeacherError

    try:
        check_thresholds(args)
        kinds = parse_tasks(args)
        parse_size(args.seg_size)
        samples = read_manifest(args.manifest)
        labeller = Labeller(args, kinds, teacher_files(args, kinds))
    except (ManifestError, TeacherError, ValueError, OSError) as exc:
        print(f"hydranet pseudo-label: {exc}", file=sys.stderr)
        return 2
    out = args.output / "manifest.jsonl"
    try:
        for sample in show_progress(samples, desc="pseudo-label", unit="frame", file=sys.stderr):
            labeller.label(sample)
        write_manifest(out, samples)
    except OSError as exc:  # a full disk or a read-only OUT_DIR: nothing to do but stop and say where
        print(f"hydranet pseudo-label: {exc}", file=sys.stderr)
        return 2
    for problem in labeller.bad:
        print(f"hydranet pseudo-label: skipped: {problem}", file=sys.stderr)
    print(labeller.summary(len(samples), out))
    # Frames that could not be read keep their old labels in the output; say so in the status too.
    return 1 if labeller.bad else 0
