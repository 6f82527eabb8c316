"""Importers: datasets on disk (sim, KITTI, BDD100K) and raw frames (image folder, video, rosbag2) -> manifest samples.

Each importer returns a list of `Sample` (hydranet_ros.train.manifest) whose labels point at the dataset's own
files: a segmentation task reads the original PNG through a "map" instead of a converted copy, so importing costs
no disk and never drifts from the source. Only frames that exist nowhere as files (video, bag) are written out.

Labels are keyed by the default model's task names: drivable_area, lane_lines, depth, detections
(vehicle / pedestrian / cyclist). Bad input raises ImportDataError with the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hydranet_ros.core.frames import (
    IMAGE_SUFFIXES,
    Camera,
    FrameSourceError,
    IntrinsicsTuple,
    image_size,
    list_images,
    read_json,
    require_dir,
    video_frames,
)
from hydranet_ros.core.progress import show_progress
from hydranet_ros.train.manifest import HELD_OUT_KEY, IGNORE_CLASS, Sample

log = logging.getLogger(__name__)

JPEG_QUALITY = 95


class ImportDataError(FrameSourceError):
    """Input that cannot be imported; the message names the file and what is wrong with it."""


# --- shared helpers -------------------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[Any]:
    if not path.is_file():
        raise ImportDataError(f"{path} does not exist")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ImportDataError(f"{path}: not JSON lines ({exc})") from exc


def check_files(samples: Iterable[Sample]) -> None:
    """Raise if an image or a label file of the samples is missing (an incomplete copy of a dataset)."""
    missing = []
    for s in samples:
        files = [s.image] + [Path(label["file"]) for label in s.labels.values() if "file" in label]
        missing += [p for p in files if not p.is_file()]
    if missing:
        raise ImportDataError(f"{len(missing)} file(s) missing, e.g. {', '.join(str(p) for p in missing[:3])}")


# --- sim (MetaDrive multi-task set, ../shared/assets/sim) -------------------------------------------------------------

# Semantic ids: 0 background, 1 road, 2 lane line, 3 sidewalk, 4 vehicle. Lane paint lies on the road, so it is
# drivable; a vehicle stands on the road but its pixels are not drivable.
SIM_DRIVABLE = {"1": 1, "2": 1}
SIM_LANES = {"2": 1}
SIM_CLASSES = {"car": "vehicle", "truck": "vehicle"}


def import_sim(root: str | Path, *, source: str = "sim") -> list[Sample]:
    """The sim set: all four tasks per frame, the episode in `extra` (for splitting without leaks)."""
    root = require_dir(Path(root), "sim dataset")
    meta = read_json(root / "dataset.json")
    try:
        size = (int(meta["image_size"]["width"]), int(meta["image_size"]["height"]))
        k = meta["intrinsics"]
        intrinsics = (float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ImportDataError(f"{root / 'dataset.json'}: not a sim dataset description ({exc!r})") from exc
    samples = [_sim_sample(root, frame, size, intrinsics, source) for frame in _read_jsonl(root / "frames.jsonl")]
    check_files(samples)
    return samples


def _sim_sample(root: Path, frame: dict[str, Any], size: tuple[int, int], intrinsics: IntrinsicsTuple,
                source: str) -> Sample:
    name = frame["frame"]
    semantic = root / "semantic" / f"{name}.png"
    # The JSON's x1..y2 is the full (amodal, image-clipped) box. Vehicles more than 85 % outside the image have
    # vehicle pixels in semantic/ but no box; the set's README calls them don't-care, so their blobs become
    # "ignore" regions (neither positive nor negative for the detector).
    boxes = [[round(b["x1"], 2), round(b["y1"], 2), round(b["x2"], 2), round(b["y2"], 2),
              SIM_CLASSES.get(b["cls"], IGNORE_CLASS)] for b in read_json(root / "boxes" / f"{name}.json")]
    boxes += _unboxed_vehicles(semantic, boxes)
    labels = {
        "drivable_area": {"file": semantic, "map": dict(SIM_DRIVABLE), "default": 0},
        "lane_lines": {"file": semantic, "map": dict(SIM_LANES), "default": 0},
        # 0 is the sky: nothing within range, so the depth head learns "far" there rather than nothing.
        "depth": {"file": root / "depth" / f"{name}.png", "zero": "far"},
        "detections": {"boxes": boxes},
    }
    return Sample(image=root / "rgb" / f"{name}.jpg", labels=labels, intrinsics=intrinsics, size=size,
                  source=source, extra={"episode": frame["episode"]})


SIM_VEHICLE = 4
UNBOXED_MIN_PX = 50  # smaller leftovers are the edges of boxed vehicles, not missing ones


def _unboxed_vehicles(semantic: Path, boxes: list[list[Any]]) -> list[list[Any]]:
    """Don't-care boxes around vehicle blobs that no labelled box covers (vehicles mostly outside the image)."""
    import cv2
    import numpy as np

    ids = cv2.imread(str(semantic), cv2.IMREAD_UNCHANGED)
    if ids is None:
        raise ImportDataError(f"cannot read {semantic}")
    vehicle = (ids == SIM_VEHICLE).astype(np.uint8)
    for x1, y1, x2, y2, _ in boxes:
        vehicle[max(0, int(y1)):int(np.ceil(y2)) + 1, max(0, int(x1)):int(np.ceil(x2)) + 1] = 0
    n, _, stats, _ = cv2.connectedComponentsWithStats(vehicle, connectivity=8)
    return [[float(x), float(y), float(x + w), float(y + h), IGNORE_CLASS]
            for x, y, w, h, area in stats[1:n].tolist() if area >= UNBOXED_MIN_PX]


# --- KITTI object benchmark layout --------------------------------------------------------------------------------

KITTI_CLASSES = {
    "Car": "vehicle", "Van": "vehicle", "Truck": "vehicle",
    "Pedestrian": "pedestrian", "Person_sitting": "pedestrian",  # a person is a person, standing or not
    "Cyclist": "cyclist",
    # Don't-care regions, each for its own reason: a Tram is vehicle-like but none of our classes, so finding it
    # as a vehicle must not be punished nor learnt; Misc is anything (trailers, carts); DontCare boxes are regions
    # KITTI's annotators left unlabelled (far or crowded objects), so nothing inside them is a negative either.
    "Tram": IGNORE_CLASS, "Misc": IGNORE_CLASS, "DontCare": IGNORE_CLASS,
}
KITTI_SPLITS = ("all", "train", "val")


def import_kitti(root: str | Path, *, source: str = "kitti", split: str = "all") -> list[Sample]:
    """image_2/ + calib/ (P2), label_2/ when present (boxes), sparse_depth/ when present (LiDAR depth).

    split: "train" or "val" keeps the frames that root/split.json lists under that name (KITTI frame stems);
    "all" keeps every frame and still marks the val frames, when split.json exists, so that they can never be
    trained on by any path (see `HELD_OUT_KEY`).
    """
    if split not in KITTI_SPLITS:
        raise ImportDataError(f"KITTI split must be one of {', '.join(KITTI_SPLITS)}, got {split!r}")
    root = require_dir(Path(root), "KITTI folder")
    images_dir = require_dir(root / "image_2", "KITTI image folder")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ImportDataError(f"no images in {images_dir}")
    val = read_kitti_split(root, "val", required=split != "all")
    if split != "all":
        wanted = read_kitti_split(root, split, required=True)
        missing = sorted(wanted - {p.stem for p in images})
        if missing:
            raise ImportDataError(f"{root / 'split.json'} lists {len(missing)} {split} frame(s) with no image in "
                                  f"{images_dir}: {', '.join(missing[:5])}")
        images = [p for p in images if p.stem in wanted]
    samples = [_kitti_sample(root, image, source) for image in images]
    for s in samples:
        if s.image.stem in val:
            s.extra[HELD_OUT_KEY] = f"{root.name}/split.json:val"
    return samples


def read_kitti_split(root: Path, name: str, required: bool) -> set[str]:
    """The frame stems split.json lists under `name` (empty if there is no split.json and it is not required)."""
    path = root / "split.json"
    if not path.is_file():
        if required:
            raise ImportDataError(f"--split needs {path} ({{\"train\": [stems], \"val\": [stems]}})")
        return set()
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get(name), list):
        raise ImportDataError(f"{path}: no list {name!r} (expected {{\"train\": [...], \"val\": [...]}})")
    train, val = set(map(str, doc.get("train", []))), set(map(str, doc.get("val", [])))
    if train & val:
        raise ImportDataError(f"{path}: frames in both train and val: {', '.join(sorted(train & val)[:5])}")
    return set(map(str, doc[name]))


def _kitti_sample(root: Path, image: Path, source: str) -> Sample:
    labels: dict[str, dict[str, Any]] = {}
    label_file = root / "label_2" / f"{image.stem}.txt"
    if label_file.is_file():  # the testing split has no labels: those frames stay unlabelled for detection
        labels["detections"] = {"boxes": read_kitti_boxes(label_file)}
    depth = root / "sparse_depth" / f"{image.stem}.png"
    if depth.is_file():
        labels["depth"] = {"file": depth}
    return Sample(image=image, labels=labels, intrinsics=read_kitti_intrinsics(root / "calib" / f"{image.stem}.txt"),
                  size=image_size(image), source=source)


def read_kitti_intrinsics(calib: str | Path) -> IntrinsicsTuple:
    """fx, fy, cx, cy of the left colour camera (P2, the rectified camera of image_2/ and of the labels)."""
    calib = Path(calib)
    if not calib.is_file():
        raise ImportDataError(f"{calib} does not exist (every KITTI frame needs its calib/ file)")
    for line in calib.read_text().splitlines():
        key, _, values = line.partition(":")
        if key.strip() == "P2":
            p = [float(v) for v in values.split()]
            if len(p) != 12:
                raise ImportDataError(f"{calib}: P2 has {len(p)} values, expected 12 (3x4)")
            return (p[0], p[5], p[2], p[6])
    raise ImportDataError(f"{calib}: no P2 line")


def read_kitti_boxes(label_file: str | Path) -> list[list[Any]]:
    """label_2 lines -> [x1, y1, x2, y2, class]; classes outside KITTI's list become "ignore"."""
    boxes = []
    for n, line in enumerate(Path(label_file).read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            x1, y1, x2, y2 = (float(v) for v in fields[4:8])
        except ValueError as exc:
            raise ImportDataError(f"{label_file}:{n}: not a KITTI label line ({exc})") from exc
        boxes.append([x1, y1, x2, y2, KITTI_CLASSES.get(fields[0], IGNORE_CLASS)])
    return boxes


# --- BDD100K (official label formats) -------------------------------------------------------------------------------

BDD_CLASSES = {
    # det_20 (Scalabel) names, then the 2018 release's names for the same things.
    "car": "vehicle", "truck": "vehicle", "bus": "vehicle", "train": "vehicle",
    "pedestrian": "pedestrian", "person": "pedestrian",
    "rider": "cyclist",  # riders of bicycles and motorcycles alike; the rider's box is the one we learn
    # The two-wheeler under a rider is neither the cyclist box nor background; the rare vehicle-like and
    # person-like leftovers are not negatives either. Traffic lights and signs are dropped: no class of ours.
    "bicycle": IGNORE_CLASS, "motorcycle": IGNORE_CLASS, "bike": IGNORE_CLASS, "motor": IGNORE_CLASS,
    "other vehicle": IGNORE_CLASS, "trailer": IGNORE_CLASS, "other person": IGNORE_CLASS,
}
# 2020 drivable masks: 0 = direct (own lane), 1 = alternative (lanes one may change to), 2 = background.
BDD_DRIVABLE = {"0": 1, "1": 1}


def import_bdd100k(images: str | Path, *, detections: str | Path | None = None, drivable: str | Path | None = None,
                   intrinsics: Camera | None = None, source: str = "bdd100k") -> list[Sample]:
    """Images in `images` that have a detection entry (det_20 JSON, the 2018 JSON, or a folder of the 2018
    per-image JSONs) and/or a 2020 drivable mask (`drivable`/<stem>.png). Labels for absent images are skipped."""
    images = require_dir(Path(images), "BDD100K image folder")
    if detections is None and drivable is None:
        raise ImportDataError("bdd100k needs a detection JSON, a drivable-mask folder, or both")
    boxes = read_bdd_detections(Path(detections)) if detections is not None else {}
    masks = _bdd_masks(Path(drivable)) if drivable is not None else {}
    names = {stem: f"{stem}.jpg" for stem in masks}  # stem -> image file name; the JSON's name wins
    names.update({Path(n).stem: n for n in boxes})
    samples, absent = [], 0
    for stem in sorted(names):
        image = images / names[stem]
        if not image.is_file():
            absent += 1
            continue
        samples.append(_bdd_sample(image, boxes.get(names[stem]), masks.get(stem), intrinsics, source))
    if absent:
        log.warning("%d labelled frame(s) have no image in %s: skipped", absent, images)
    if not samples:
        raise ImportDataError(f"none of the {len(names)} labelled frames has its image in {images}")
    return samples


def _bdd_sample(image: Path, boxes: list[list[Any]] | None, mask: Path | None, camera: Camera | None,
                source: str) -> Sample:
    labels: dict[str, dict[str, Any]] = {}
    if boxes is not None:
        labels["detections"] = {"boxes": boxes}
    if mask is not None:
        labels["drivable_area"] = {"file": mask, "map": dict(BDD_DRIVABLE), "default": 0}
    size = image_size(image)
    return Sample(image=image, labels=labels, size=size, intrinsics=camera.at(size) if camera else None,
                  source=source)


def read_bdd_detections(path: Path) -> dict[str, list[list[Any]]]:
    """Image file name -> boxes, from any of BDD100K's detection label formats."""
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise ImportDataError(f"no JSON files in {path}")
    out: dict[str, list[list[Any]]] = {}
    for f in files:
        for name, objects in _bdd_entries(read_json(f), f):
            out[name if Path(name).suffix else f"{name}.jpg"] = _bdd_boxes(objects, f)
    return out


def _bdd_entries(obj: Any, where: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(image name, label objects) per frame of the three layouts."""
    if isinstance(obj, dict) and "frames" in obj and "name" in obj:  # 2018 per-image file: {"name", "frames": [...]}
        yield obj["name"], [o for fr in obj["frames"] for o in fr.get("objects") or []]
        return
    frames = obj["frames"] if isinstance(obj, dict) and "frames" in obj else obj  # Scalabel dataset {"frames", ...}
    if not isinstance(frames, list):
        raise ImportDataError(f"{where}: not a BDD100K detection file (a list of frames with 'name' and 'labels')")
    for fr in frames:
        if not isinstance(fr, dict) or "name" not in fr:
            raise ImportDataError(f"{where}: frame without a 'name': {str(fr)[:80]}")
        yield fr["name"], fr.get("labels") or []  # no labels: a frame with nothing in it, still labelled


def _bdd_boxes(objects: list[dict[str, Any]], where: Path) -> list[list[Any]]:
    boxes = []
    for o in objects:
        cls, box = BDD_CLASSES.get(o.get("category", "")), o.get("box2d")
        if cls is None or not box:  # a class we do not learn, or a polygon (drivable / lane in the 2018 file)
            continue
        try:
            boxes.append([float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"]), cls])
        except (KeyError, TypeError, ValueError) as exc:
            raise ImportDataError(f"{where}: box2d {box!r} is not {{x1, y1, x2, y2}}") from exc
    return boxes


def _bdd_masks(folder: Path) -> dict[str, Path]:
    folder = require_dir(folder, "BDD100K drivable-mask folder")
    masks = {p.stem: p for p in folder.glob("*.png")}
    if not masks:
        raise ImportDataError(f"no PNG masks in {folder}")
    _check_bdd_mask(next(iter(masks.values())))
    return masks


def _check_bdd_mask(path: Path) -> None:
    """Catch the colour maps (colormaps/) passed for the id masks (masks/) at import, not mid-training."""
    import cv2

    png = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if png is None:
        raise ImportDataError(f"cannot read drivable mask {path}")
    if png.ndim == 3 or png.max() > 2:
        raise ImportDataError(f"{path} is not a 2020 drivable id mask (single channel, values 0-2): use the "
                              "masks/ folder, not colormaps/")


# --- raw frames: image folder, video, rosbag2 -----------------------------------------------------------------------


def import_image_folder(folder: str | Path, *, recursive: bool = False, every: int = 1, max_frames: int | None = None,
                        intrinsics: Camera | None = None, source: str | None = None) -> list[Sample]:
    """Every `every`-th image of a folder (natural order), no labels."""
    files = list_images(folder, recursive=recursive)[::every][:max_frames]
    source = source if source is not None else Path(folder).name
    return [_frame_sample(p, image_size(p), intrinsics, source, {}) for p in files]


def _frame_sample(image: Path, size: tuple[int, int], camera: Camera | None, source: str,
                  extra: dict[str, Any]) -> Sample:
    return Sample(image=image, size=size, intrinsics=camera.at(size) if camera else None, source=source,
                  extra=extra)


def _progress(iterable: Iterable[Any], total: int | None, desc: str, enabled: bool) -> Iterable[Any]:
    return show_progress(iterable, total=total or None, desc=desc, unit="frame", enabled=enabled, leave=False)


def _write_jpeg(path: Path, image: Any) -> None:
    import cv2

    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise ImportDataError(f"cannot write {path}")


def import_video(video: str | Path, frames_dir: str | Path, *, every: int = 1, max_frames: int | None = None,
                 intrinsics: Camera | None = None, source: str | None = None,
                 progress: bool = False) -> list[Sample]:
    """Frames 0, every, 2*every, ... of a video as JPEGs (frames_dir/NNNNNN.jpg, N = frame number)."""
    import cv2

    video, frames_dir = Path(video), Path(frames_dir)
    if not video.is_file():
        raise ImportDataError(f"video {video} does not exist")
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ImportDataError(f"cannot open video {video} (not a video, or a codec OpenCV lacks)")
    frames_dir.mkdir(parents=True, exist_ok=True)
    source = source if source is not None else video.stem
    samples = []
    try:
        total = -(-int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) // every)
        total = min(total, max_frames) if max_frames is not None else total
        for i, frame in _progress(video_frames(cap, every, max_frames), total, video.name, progress):
            path = frames_dir / f"{i:06d}.jpg"
            _write_jpeg(path, frame)
            size = (frame.shape[1], frame.shape[0])
            samples.append(_frame_sample(path, size, intrinsics, source, {"episode": video.stem, "frame": i}))
    finally:
        cap.release()
    if not samples:
        raise ImportDataError(f"no frame could be read from video {video}")
    return samples


# rosbag2 -----------------------------------------------------------------------------------------------------------

IMAGE_MSG = "sensor_msgs/msg/Image"
COMPRESSED_MSG = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_MSG = "sensor_msgs/msg/CameraInfo"
def import_bag(bag: str | Path, frames_dir: str | Path, *, topic: str | None = None,
               camera_info_topic: str | None = None, every: int = 1, max_frames: int | None = None,
               intrinsics: Camera | None = None, source: str | None = None, progress: bool = False) -> list[Sample]:
    """Image (or CompressedImage) messages of one topic as files in frames_dir/<topic>/NNNNNN.jpg (N = message
    index). Intrinsics from the bag's CameraInfo (`camera_info_topic`, else one in the image topic's namespace),
    else `intrinsics`. The topic may be left out when the bag has one image topic."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.rosbag1 import ReaderError as Reader1Error
    from rosbags.rosbag2 import ReaderError as Reader2Error
    from rosbags.typesys import Stores, get_typestore

    bag = Path(bag)
    if not bag.exists():
        raise ImportDataError(f"bag {bag} does not exist")
    try:
        # The default typestore decodes bags recorded without message definitions (sqlite3 bags before Iron).
        with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
            connections = _image_connections(reader, topic, bag)
            camera = _bag_camera(reader, connections[0].topic, camera_info_topic, bag) or intrinsics
            out_dir = Path(frames_dir) / connections[0].topic.strip("/")
            out_dir.mkdir(parents=True, exist_ok=True)
            meta = {"episode": bag.stem, "topic": connections[0].topic}
            source = source if source is not None else bag.stem
            samples = [_frame_sample(path, size, camera, source, {**meta, "stamp_ns": stamp})
                       for path, size, stamp in _bag_frames(reader, connections, out_dir, every, max_frames,
                                                            progress)]
    except (AnyReaderError, Reader1Error, Reader2Error) as exc:
        raise ImportDataError(f"cannot read bag {bag}: {exc}") from exc
    if not samples:
        raise ImportDataError(f"{bag}: topic {connections[0].topic} has no messages")
    return samples


def _image_connections(reader: Any, topic: str | None, bag: Path) -> list[Any]:
    images = [c for c in reader.connections if c.msgtype in (IMAGE_MSG, COMPRESSED_MSG)]
    counts = Counter()
    for c in images:
        counts[(c.topic, c.msgtype.rsplit("/", 1)[-1])] += c.msgcount
    listing = ", ".join(f"{t} ({kind}, {n} msgs)" for (t, kind), n in sorted(counts.items())) or "none"
    if topic is None:
        if len(counts) != 1:
            raise ImportDataError(f"{bag} has {len(counts)} image topics; pick one with --topic: {listing}")
        topic = images[0].topic
    chosen = [c for c in images if c.topic == topic]
    if not chosen:
        raise ImportDataError(f"{bag} has no image topic {topic}; its image topics: {listing}")
    return chosen


def _bag_camera(reader: Any, image_topic: str, info_topic: str | None, bag: Path) -> Camera | None:
    infos = [c for c in reader.connections if c.msgtype == CAMERA_INFO_MSG]
    if info_topic:
        chosen = [c for c in infos if c.topic == info_topic]
        if not chosen:
            listing = ", ".join(sorted({c.topic for c in infos})) or "none"
            raise ImportDataError(f"{bag} has no CameraInfo topic {info_topic}; its CameraInfo topics: {listing}")
    else:
        chosen = _same_namespace(infos, image_topic)
    if not chosen:  # (rosbags reads every topic for an empty connection list)
        return None
    for _conn, _t, raw in reader.messages(connections=chosen):
        msg = reader.deserialize(raw, CAMERA_INFO_MSG)
        if msg.k[0] > 0 and msg.k[4] > 0:  # an uncalibrated camera publishes K = 0
            size = (int(msg.width), int(msg.height)) if msg.width and msg.height else None
            return Camera(float(msg.k[0]), float(msg.k[4]), float(msg.k[2]), float(msg.k[5]), size)
    return None


def _same_namespace(infos: list[Any], image_topic: str) -> list[Any]:
    """The CameraInfo connections of the deepest namespace that holds the image topic (/cam/camera_info for
    /cam/image_raw and /cam/image_raw/compressed); another camera's CameraInfo is never taken."""
    def namespace(topic: str) -> str:
        return topic.rsplit("/", 1)[0]

    ours = [c for c in infos if image_topic.startswith(namespace(c.topic) + "/")]
    if not ours:
        return []
    deepest = max(len(namespace(c.topic)) for c in ours)
    ours = [c for c in ours if len(namespace(c.topic)) == deepest]
    named = [c for c in ours if c.topic.endswith("/camera_info")]
    return named or ours


def _bag_frames(reader: Any, connections: list[Any], out_dir: Path, every: int, max_frames: int | None,
                progress: bool) -> Iterator[tuple[Path, tuple[int, int], int]]:
    total = sum(c.msgcount for c in connections)
    taken = 0
    messages = _progress(reader.messages(connections=connections), total, connections[0].topic, progress)
    for i, (conn, t, raw) in enumerate(messages):
        if max_frames is not None and taken >= max_frames:
            return
        if i % every:
            continue
        msg = reader.deserialize(raw, conn.msgtype)
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        path = _write_compressed(msg, out_dir / f"{i:06d}", conn.topic) if conn.msgtype == COMPRESSED_MSG \
            else _write_raw(msg, out_dir / f"{i:06d}.jpg", conn.topic)
        taken += 1
        yield path, image_size(path), stamp or t  # header stamp 0: a publisher that never set it


def _write_raw(msg: Any, path: Path, topic: str) -> Path:
    """Any camera encoding the node reads (core/images.py's table: Bayer, YUV, 16-bit, ...) -> a JPEG."""
    import cv2

    from hydranet_ros.core.images import DEPTH_ENCODINGS, ImageError, decode_raw

    if msg.encoding in DEPTH_ENCODINGS:
        raise ImportDataError(f"{topic}: image encoding {msg.encoding!r} is not supported: by REP 118 it is a depth "
                              "image, not a camera frame")
    try:
        rgb = decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data)
    except ImageError as exc:
        raise ImportDataError(f"{topic}: {exc}") from None
    _write_jpeg(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _write_compressed(msg: Any, stem: Path, topic: str) -> Path:
    """JPEG and PNG payloads are already image files: written as they are, no second lossy encode."""
    from hydranet_ros.core.images import compressed_kind

    data = bytes(msg.data)
    kind = compressed_kind(data)
    if kind is None:
        raise ImportDataError(f"{topic}: CompressedImage format {msg.format!r} is neither JPEG nor PNG "
                              "(compressedDepth is a depth image, not a camera frame)")
    path = stem.with_suffix(".jpg" if kind == "jpeg" else ".png")
    path.write_bytes(data)
    return path


# --- splitting and summaries --------------------------------------------------------------------------------------


def split_by_episode(samples: list[Sample], val_fraction: float) -> tuple[list[Sample], list[Sample]]:
    """(train, val) with round(val_fraction x episodes) whole episodes in val (extra["episode"]; a sample without
    one is its own episode), so that no sequence is on both sides. Deterministic: episodes are ranked by a hash of
    their id, so the choice does not depend on the order of the samples or on the Python version."""
    if not 0.0 <= val_fraction < 1.0:
        raise ImportDataError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        return list(samples), []
    keys = [("episode", s.extra["episode"]) if "episode" in s.extra else ("sample", str(s.image)) for s in samples]
    episodes = sorted(set(keys), key=lambda k: hashlib.sha256(repr(k).encode()).hexdigest())
    n_val = max(1, round(val_fraction * len(episodes)))
    if n_val >= len(episodes):
        raise ImportDataError(f"a validation fraction of {val_fraction} of {len(episodes)} episode(s) leaves no "
                              "episode to train on")
    val_keys = set(episodes[:n_val])
    train = [s for s, k in zip(samples, keys, strict=True) if k not in val_keys]
    val = [s for s, k in zip(samples, keys, strict=True) if k in val_keys]
    return train, val


def summarize(samples: Iterable[Sample]) -> dict[str, Any]:
    """{"samples": n, "tasks": {task: samples labelled}, "boxes": {class: count}, "intrinsics": samples with K}."""
    n, with_k, tasks, boxes = 0, 0, Counter(), Counter()
    for s in samples:
        n += 1
        with_k += s.intrinsics is not None
        tasks.update(s.labels.keys())
        for label in s.labels.values():
            boxes.update(b[4] for b in label.get("boxes", []))
    return {"samples": n, "tasks": dict(tasks), "boxes": dict(boxes), "intrinsics": with_k}
