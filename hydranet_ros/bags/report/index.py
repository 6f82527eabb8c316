"""The first pass over a bag: which of the node's outputs it holds, every stamp, the boxes, labels and
diagnostics (small messages only); and dense images read back as arrays."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hydranet_ros.bags.rosbag import BagError
from hydranet_ros.core.images import DENSE_ENCODINGS, to_array

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
OCCUPANCY_GRID = "nav_msgs/msg/OccupancyGrid"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
# The default model's per-frame outputs, and the message type of each. Any other head of a model is found by what
# the node publishes beside it: a segmentation head's `<name>/label_info`, a depth head's `<name>/camera_info`.
OUTPUTS = {"drivable_area": IMAGE, "lane_lines": IMAGE, "depth": IMAGE, "detections": DETECTIONS}
MAX_FPS = 30.0  # a 60 Hz camera still makes a watchable, half-size video
MASKS = ("drivable_area", "lane_lines")


class ReportError(BagError):
    """A bag the report cannot be made from; the message says why and what the bag holds instead."""


@dataclass(frozen=True)
class Box:
    x1: float  # source-image pixels
    y1: float
    x2: float
    y2: float
    label: str
    score: float


@dataclass
class Frame:
    """One frame's pictures, gathered from several messages during the second pass."""

    camera: np.ndarray | None = None  # RGB at panel size
    source_size: tuple[int, int] | None = None  # (w, h) of the camera image the boxes refer to
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # uint8 class ids, dense size
    depth: np.ndarray | None = None  # float32 metres, dense size


@dataclass
class Ground:
    """One frame's bird's-eye outputs (base_frame): the drivable grid and the lane polylines."""

    grid: np.ndarray | None = None  # int8 [rows along y, columns along x]: 0 free, 100 occupied, -1 unknown
    resolution: float = 0.0
    origin: tuple[float, float] = (0.0, 0.0)  # (x, y) of the grid's first cell corner
    lanes: list[np.ndarray] = field(default_factory=list)  # [N, 2] (x, y) polylines


@dataclass
class Index:
    """What the first pass learnt: topics, the stamps of every output, boxes, labels and diagnostics."""

    bases: list[str]
    base: str
    camera: str
    topics: dict[str, str]  # output name -> topic present in the bag
    masks: list[str]  # segmentation outputs, in the order they are tinted
    depth: str | None  # the depth output shown (the first, as the node's box distances)
    detections: list[str]
    stamps: dict[str, set[int]]  # output name (+ "overlay") -> stamps it has
    boxes: dict[int, list[Box]]
    labels: dict[str, list[str]]  # output name -> class names, index = class id (from LabelInfo)
    diagnostics: list[Any]
    image_topic: str | None
    image_stamps: set[int]
    notes: list[str]
    duplicates: Counter
    source_size: tuple[int, int] | None = None  # the camera's, when no image says it (from its CameraInfo)
    failures: dict[str, list[str]] = field(default_factory=dict)  # topic -> decode errors (frames kept)
    ground: dict[int, Ground] = field(default_factory=dict)  # stamp -> the bird's-eye grid and lane lines

    @property
    def outputs(self) -> list[str]:
        """The per-frame outputs shown: masks, the depth, detections."""
        return [*self.masks, *([self.depth] if self.depth else []), *self.detections]


# --- first pass: topics, stamps, boxes, labels, diagnostics --------------------------------------------------------

def _topic_types(reader: Any) -> dict[str, str]:
    return {c.topic: c.msgtype for c in reader.connections}


def bag_topics(reader: Any) -> dict[str, dict[str, Any]]:
    """Every topic of the bag with its type and message count (from the bag's own index, nothing decoded)."""
    counts: Counter = Counter()
    for c in reader.connections:
        counts[c.topic] += c.msgcount
    types = _topic_types(reader)
    return {t: {"type": types[t], "count": counts[t]} for t in sorted(types)}


def _listing(types: dict[str, str]) -> str:
    return ", ".join(f"{t} ({m.rsplit('/', 1)[-1]})" for t, m in sorted(types.items())) or "no topics at all"


def find_bases(types: dict[str, str]) -> list[str]:
    """Output bases of the node (`/hydranet/front`): prefixes of a drivable_area, lane_lines, depth or detections
    topic of the right type, or of any head's `<name>/label_info`."""
    bases = set()
    for topic, msgtype in types.items():
        if msgtype == LABEL_INFO and topic.endswith("/label_info") and topic.count("/") >= 3:
            bases.add(topic.rsplit("/", 2)[0])
        for name, expected in OUTPUTS.items():
            if topic.endswith("/" + name) and msgtype == expected and len(topic) > len(name) + 1:
                bases.add(topic[: -len(name) - 1])
    return sorted(bases)


def _pick_base(bases: list[str], camera: str | None, bag: Path, types: dict[str, str]) -> str:
    if not bases:
        raise ReportError(f"{bag} holds none of hydranet_node's outputs (<base>/drivable_area, /lane_lines, /depth, "
                          f"/detections); its topics: {_listing(types)}")
    if camera is None:
        return bases[0]
    for base in bases:
        if camera in (base, base.rstrip("/").rsplit("/", 1)[-1]):
            return base
    raise ReportError(f"{bag} has no outputs of camera {camera!r}; cameras in it: "
                      f"{', '.join(b.rsplit('/', 1)[-1] + ' (' + b + ')' for b in bases)}")


def stamp_of(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _boxes(msg: Any) -> list[Box]:
    boxes = []
    for d in msg.detections:
        cx, cy = float(d.bbox.center.position.x), float(d.bbox.center.position.y)
        w, h = float(d.bbox.size_x), float(d.bbox.size_y)
        hyp = max(d.results, key=lambda r: r.hypothesis.score).hypothesis if d.results else None
        label, score = (str(hyp.class_id), float(hyp.score)) if hyp is not None else ("?", float("nan"))
        boxes.append(Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, label, score))
    return boxes


def read_index(reader: Any, bag: Path, camera: str | None, image_topic: str | None) -> Index:
    types = _topic_types(reader)
    bases = find_bases(types)
    base = _pick_base(bases, camera, bag, types)
    masks, depths, detectors = _outputs(types, base)
    topics = {name: f"{base}/{name}" for name in (*masks, *depths[:1], *detectors)}
    label_topics = {f"{base}/{name}/label_info": name for name in topics
                    if types.get(f"{base}/{name}/label_info") == LABEL_INFO}
    # Camera candidates: image topics that no node base publishes (the overlay is an output, not the camera).
    candidates = [t for t, m in types.items() if m in (IMAGE, COMPRESSED) and not any(t.startswith(b + "/")
                                                                                       for b in bases)]
    notes: list[str] = []
    if image_topic is not None:
        if types.get(image_topic) not in (IMAGE, COMPRESSED):
            listing = ", ".join(sorted(candidates)) or "none"
            raise ReportError(f"{bag} has no Image or CompressedImage topic {image_topic}; its camera image topics: "
                              f"{listing}")
        candidates = [image_topic]
    ground_topics = {t: kind for t, kind in ((f"{base}/drivable_grid", OCCUPANCY_GRID),
                                             (f"{base}/lane_polylines", MARKER_ARRAY)) if types.get(t) == kind}
    ground: dict[int, Ground] = {}
    wanted = set(topics.values()) | set(label_topics) | set(candidates) | set(ground_topics) | {"/diagnostics"}
    topic_name = {topic: name for name, topic in topics.items()}
    stamps: dict[str, set[int]] = {name: set() for name in topics}
    candidate_stamps: dict[str, set[int]] = {t: set() for t in candidates}
    frame_ids: dict[str, set[str]] = {t: set() for t in [*candidates, "outputs"]}
    boxes: dict[int, list[Box]] = {}
    labels: dict[str, list[str]] = {}
    diagnostics: list[Any] = []
    duplicates: Counter = Counter()
    for conn, _t, raw in reader.messages(connections=[c for c in reader.connections if c.topic in wanted]):
        msg = reader.deserialize(raw, conn.msgtype)
        if conn.topic in topic_name:
            name, stamp = topic_name[conn.topic], stamp_of(msg)
            if stamp in stamps[name]:
                duplicates[name] += 1  # the first message of a stamp is the one shown
                continue
            stamps[name].add(stamp)
            frame_ids["outputs"].add(str(msg.header.frame_id))
            if name in detectors:
                boxes.setdefault(stamp, []).extend(_boxes(msg))
        elif conn.topic in ground_topics:
            # A MarkerArray has no header: its markers carry the frame's (the first is always the DELETEALL).
            stamped = msg if ground_topics[conn.topic] == OCCUPANCY_GRID else (msg.markers[0] if msg.markers else None)
            if stamped is None:
                continue
            g = ground.setdefault(stamp_of(stamped), Ground())
            if ground_topics[conn.topic] == OCCUPANCY_GRID:
                info = msg.info
                g.grid = np.asarray(msg.data, np.int8).reshape(int(info.height), int(info.width))
                g.resolution, g.origin = float(info.resolution), (info.origin.position.x, info.origin.position.y)
            else:
                g.lanes = [np.array([[p.x, p.y] for p in m.points]) for m in msg.markers if len(m.points) >= 2]
        elif conn.topic in candidate_stamps:
            candidate_stamps[conn.topic].add(stamp_of(msg))
            frame_ids[conn.topic].add(str(msg.header.frame_id))
        elif conn.topic in label_topics:
            names = [""] * (max((int(c.class_id) for c in msg.class_map), default=-1) + 1)
            for c in msg.class_map:
                names[int(c.class_id)] = str(c.class_name)
            labels[label_topics[conn.topic]] = names
        elif conn.msgtype == DIAGNOSTICS:
            diagnostics.append(msg)
    outputs = set().union(*stamps.values()) if stamps else set()
    # The camera is the image topic that shares the most stamps with the outputs. Synchronised cameras share
    # stamps, so ties go to the topic whose frame_id the outputs carry (the node keeps the camera's by default),
    # then to the one named after the camera (/camera/rear/image_raw for /hydranet/rear).
    name = base.rstrip("/").rsplit("/", 1)[-1]

    def score(t: str) -> tuple[int, bool, bool]:
        return (len(candidate_stamps[t] & outputs), bool(frame_ids[t] & frame_ids["outputs"]),
                name in t.strip("/").split("/"))

    ranked = sorted(candidates, key=lambda t: (score(t), t), reverse=True)
    chosen = ranked[0] if ranked and score(ranked[0])[0] > 0 else None
    if chosen is None:
        if candidates:
            notes.append(f"no image topic shares stamps with the outputs of {base} "
                         f"(looked at {', '.join(sorted(candidates))})")
        else:
            notes.append("the bag holds no camera images")
    image_stamps = candidate_stamps.get(chosen, set()) if chosen else set()
    source_size = None
    if chosen is None:
        overlay = f"{base}/overlay"
        if types.get(overlay) == IMAGE:
            topics["overlay"] = overlay
            stamps["overlay"] = {stamp_of(reader.deserialize(raw, conn.msgtype)) for conn, _t, raw in
                                 reader.messages(connections=[c for c in reader.connections if c.topic == overlay])}
            notes.append(f"the camera panel shows {overlay} (the node's overlay) instead")
        else:
            source_size = _camera_info_size(reader, bases, outputs)
            notes.append("the camera panel is grey; boxes are placed " + (
                f"in a {source_size[0]}x{source_size[1]} image (the camera's CameraInfo)" if source_size else
                "at the dense outputs' scale (the camera's size is unknown)"))
    return Index(bases, base, name, topics, masks, depths[0] if depths else None, detectors, stamps, boxes, labels,
                 diagnostics, chosen, image_stamps, notes, duplicates, source_size=source_size, ground=ground)


def _outputs(types: dict[str, str], base: str) -> tuple[list[str], list[str], list[str]]:
    """(segmentation, depth, detection) outputs under `base`: the default model's names first, then the others
    in name order. An Image with a LabelInfo beside it is a segmentation head's, one with a CameraInfo a depth
    head's; the default names count without them (older recordings)."""
    names = sorted({t[len(base) + 1:] for t in types if t.startswith(base + "/") and "/" not in t[len(base) + 1:]},
                   key=lambda n: (n not in OUTPUTS, list(OUTPUTS).index(n) if n in OUTPUTS else 0, n))
    images = [n for n in names if types.get(f"{base}/{n}") == IMAGE and n != "overlay"]
    depths = [n for n in images if types.get(f"{base}/{n}/camera_info") == CAMERA_INFO or n == "depth"]
    masks = [n for n in images if n not in depths
             and (types.get(f"{base}/{n}/label_info") == LABEL_INFO or n in MASKS)]
    detectors = [n for n in names if types.get(f"{base}/{n}") == DETECTIONS]
    return masks, depths, detectors


def _camera_info_size(reader: Any, bases: list[str], outputs: set[int]) -> tuple[int, int] | None:
    """(width, height) from a CameraInfo of the camera (stamps shared with the outputs; not one of the node's)."""
    conns = [c for c in reader.connections if c.msgtype == CAMERA_INFO
             and not any(c.topic.startswith(b + "/") for b in bases)]
    for conn, _t, raw in reader.messages(connections=conns) if conns else ():
        msg = reader.deserialize(raw, conn.msgtype)
        if stamp_of(msg) in outputs and msg.width > 0 and msg.height > 0:
            return int(msg.width), int(msg.height)
    return None


def frame_rate(frames: list[int]) -> float:
    """The camera's rate from the median stamp spacing, capped at MAX_FPS; 10 when it cannot be told."""
    if len(frames) < 2:
        return 10.0
    spacing = float(np.median(np.diff(frames))) / 1e9
    return float(min(MAX_FPS, max(1.0, 1.0 / spacing))) if spacing > 0 else 10.0


# --- image messages as arrays --------------------------------------------------------------------------------------

def dense_array(msg: Any) -> np.ndarray:
    """A one-channel sensor_msgs/Image (rclpy or rosbags) -> HxW array, honouring `step` and byte order.

    16UC1 depth is millimetres by REP 118: returned as float32 metres (0 = no reading -> +inf)."""
    arr = to_array(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data, DENSE_ENCODINGS)
    if msg.encoding == "16UC1":
        metres = arr.astype(np.float32) / 1000.0
        metres[arr == 0] = np.inf
        return metres
    return arr
