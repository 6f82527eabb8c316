"""The visual report of a drive: what hydranet_node published, read back from a bag (rosbags + OpenCV, no rclpy).

For one camera of the node, every frame (an input stamp with at least one output) becomes four panels side by
side: the camera image | drivable area + lane lines tinted over it | the depth colour map with its scale | the
boxes with class, score and distance. They go into a video (report.mp4) and, for a few frames evenly spread over
the drive, a contact sheet (contact_sheet.png); /diagnostics becomes a latency summary (summary.md,
summary.json). Outputs are matched to their input frame by header stamp (exact nanoseconds): the node copies the
camera's header onto everything it publishes.

Two passes over the bag: the first reads the small messages (boxes, diagnostics, labels) and every stamp, so that
the second, over the images, knows when a frame is complete and which frames go onto the sheet, and holds only
the few frames whose outputs are still to come.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hydranet_ros.core.images import DENSE_ENCODINGS, ImageError, decode_image_msg, to_array
from hydranet_ros.ros.bags import BagError, open_reader
from hydranet_ros.ros.monitor import STAGES
from hydranet_ros.runtime.overlay import BOX_COLOURS, MASK_ALPHA, SEGMENT_COLOURS, colourise_depth, tint
from hydranet_ros.runtime.postprocess import box_distance

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
# The node's per-frame outputs that the report shows, and the message type of each.
OUTPUTS = {"drivable_area": IMAGE, "lane_lines": IMAGE, "depth": IMAGE, "detections": DETECTIONS}
MASKS = ("drivable_area", "lane_lines")

PANEL_HEIGHT = 360  # 16:9 cameras give 640x360 panels: 4 of them make a 2572 px wide frame with the gaps
TITLE_HEIGHT = 30
GAP = 4  # between panels, and (x2) between the rows of the contact sheet
MAX_SHEET_WIDTH = 2600
MIN_DEPTH = 3.0  # near end of the depth colours: a dashcam sees no road nearer than ~5 m (see _DepthScale)
MAX_FPS = 30.0  # a 60 Hz camera still makes a watchable, half-size video
BACKGROUND = (24, 24, 24)
TITLE_BG = (40, 40, 40)
EMPTY_BG = (64, 64, 64)
FONT = cv2.FONT_HERSHEY_SIMPLEX


class ReportError(BagError):
    """A bag the report cannot be made from; the message says why and what the bag holds instead."""


@dataclass
class Report:
    folder: Path
    video: Path
    sheet: Path
    summary_md: Path
    summary_json: Path
    frames: int  # frames rendered
    text: str  # the human summary printed at the end (frames, topics, latency table)
    camera: str = ""
    fps: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)  # what summary.json holds


@dataclass(frozen=True)
class Box:
    x1: float  # source-image pixels
    y1: float
    x2: float
    y2: float
    label: str
    score: float


@dataclass
class _Frame:
    """One frame's pictures, gathered from several messages during the second pass."""

    camera: np.ndarray | None = None  # RGB at panel size
    source_size: tuple[int, int] | None = None  # (w, h) of the camera image the boxes refer to
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # uint8 class ids, dense size
    depth: np.ndarray | None = None  # float32 metres, dense size


@dataclass
class _Index:
    """What the first pass learnt: topics, the stamps of every output, boxes, labels and diagnostics."""

    bases: list[str]
    base: str
    camera: str
    topics: dict[str, str]  # output name -> topic present in the bag
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


def render_report(bag: str | Path, out_dir: str | Path, *, camera: str | None = None, image_topic: str | None = None,
                  sheet_rows: int = 6, fps: float | None = None, max_depth: float = 80.0,
                  progress: bool = True, panel_height: int = PANEL_HEIGHT, min_depth: float = MIN_DEPTH) -> Report:
    """Render the report of `bag` (a rosbag2 folder, .mcap or .db3) into `out_dir`. Raises ReportError (a
    BagError) when the bag cannot be read or holds none of the node's outputs.

    The depth colour map spans min_depth (red) .. max_depth (blue) on colourise_depth's inverse scale."""
    bag = Path(bag)
    out = Path(out_dir)
    if sheet_rows < 1:
        raise ValueError(f"sheet_rows must be >= 1, got {sheet_rows}")
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth} and {max_depth}")
    reader = open_reader(bag)
    try:
        index = _index(reader, bag, camera, image_topic)
        frames = sorted(set().union(*(index.stamps.get(name, set()) for name in OUTPUTS)))
        if not frames:
            raise ReportError(f"{bag}: the node's output topics under {index.base} hold no messages")
        rate = fps if fps else _frame_rate(frames)
        topics = bag_topics(reader)
        out.mkdir(parents=True, exist_ok=True)
        scale = _DepthScale(min_depth, max_depth)
        rendered, video, sheet_rows_img, video_note = _render(reader, index, frames, out, rate, sheet_rows, scale,
                                                              progress, panel_height)
    finally:
        reader.close()
    if video_note:
        index.notes.append(video_note)
    for topic, errors in index.failures.items():
        index.notes.append(f"{len(errors)} message(s) of {topic} could not be decoded (shown as no output); "
                           f"first {errors[0]}")
    summary = _summary(bag, index, frames, topics, rate, video)
    sheet = out / "contact_sheet.png"
    picture = _contact_sheet(sheet_rows_img, _sheet_header(bag, index, summary))
    # zlib level 6: half the size of OpenCV's default for 0.3 s more (level 9 saves 3 % more for 3 s)
    cv2.imwrite(str(sheet), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    text, markdown = _texts(bag, out, index, summary, video, sheet)
    (out / "summary.md").write_text(markdown)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return Report(out, video, sheet, out / "summary.md", out / "summary.json", rendered, text, index.camera, rate,
                  summary)


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
    topic of the right type."""
    bases = set()
    for topic, msgtype in types.items():
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


def _stamp(msg: Any) -> int:
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


def _index(reader: Any, bag: Path, camera: str | None, image_topic: str | None) -> _Index:
    types = _topic_types(reader)
    bases = find_bases(types)
    base = _pick_base(bases, camera, bag, types)
    topics = {name: f"{base}/{name}" for name, t in OUTPUTS.items() if types.get(f"{base}/{name}") == t}
    label_topics = {f"{base}/{name}/label_info": name for name in OUTPUTS
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
    wanted = set(topics.values()) | set(label_topics) | set(candidates) | {"/diagnostics"}
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
            name, stamp = topic_name[conn.topic], _stamp(msg)
            if stamp in stamps[name]:
                duplicates[name] += 1  # the first message of a stamp is the one shown
                continue
            stamps[name].add(stamp)
            frame_ids["outputs"].add(str(msg.header.frame_id))
            if name == "detections":
                boxes[stamp] = _boxes(msg)
        elif conn.topic in candidate_stamps:
            candidate_stamps[conn.topic].add(_stamp(msg))
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
            stamps["overlay"] = {_stamp(reader.deserialize(raw, conn.msgtype)) for conn, _t, raw in
                                 reader.messages(connections=[c for c in reader.connections if c.topic == overlay])}
            notes.append(f"the camera panel shows {overlay} (the node's overlay) instead")
        else:
            source_size = _camera_info_size(reader, bases, outputs)
            notes.append("the camera panel is grey; boxes are placed " + (
                f"in a {source_size[0]}x{source_size[1]} image (the camera's CameraInfo)" if source_size else
                "at the dense outputs' scale (the camera's size is unknown)"))
    return _Index(bases, base, name, topics, stamps, boxes, labels, diagnostics, chosen, image_stamps, notes,
                  duplicates, source_size=source_size)


def _camera_info_size(reader: Any, bases: list[str], outputs: set[int]) -> tuple[int, int] | None:
    """(width, height) from a CameraInfo of the camera (stamps shared with the outputs; not one of the node's)."""
    conns = [c for c in reader.connections if c.msgtype == "sensor_msgs/msg/CameraInfo"
             and not any(c.topic.startswith(b + "/") for b in bases)]
    for conn, _t, raw in reader.messages(connections=conns) if conns else ():
        msg = reader.deserialize(raw, conn.msgtype)
        if _stamp(msg) in outputs and msg.width > 0 and msg.height > 0:
            return int(msg.width), int(msg.height)
    return None


def _frame_rate(frames: list[int]) -> float:
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


# --- second pass: pictures -----------------------------------------------------------------------------------------

def _render(reader: Any, index: _Index, frames: list[int], out: Path, fps: float, sheet_rows: int,
            scale: _DepthScale, progress: bool, panel_height: int) -> tuple[int, Path, list[np.ndarray], str]:
    """Stream the image messages, compose each complete frame in stamp order into the video; keep the sheet's
    frames. Returns (frames rendered, video path, sheet rows, a note on the video format or "")."""
    from tqdm import tqdm

    picture = index.image_topic or index.topics.get("overlay")
    parts = {name: index.topics[name] for name in (*MASKS, "depth") if name in index.topics}
    have_picture = index.image_stamps if index.image_topic else index.stamps.get("overlay", set())
    frame_set = set(frames)
    # What each frame waits for: the image messages this bag holds for its stamp.
    needs = {s: {n for n in parts if s in index.stamps[n]} | ({"camera"} if s in have_picture else set())
             for s in frames}
    topic_part = {t: n for n, t in parts.items()}
    if picture:
        topic_part[picture] = "camera"
    pending: dict[int, _Frame] = {}
    sheet_at = set(np.linspace(0, len(frames) - 1, min(sheet_rows, len(frames))).round().astype(int).tolist())
    t0 = frames[0]
    writer: _Video | None = None
    sheet: list[np.ndarray] = []
    layout = _Layout(panel_height - panel_height % 2)
    if index.source_size:
        layout.learn(index.source_size)
    bar = tqdm(total=len(frames), desc="hydranet report", unit="frame", file=sys.stderr, disable=not progress)
    done = 0

    def emit_ready() -> None:
        nonlocal done, writer
        while done < len(frames):
            s = frames[done]
            f = pending.get(s)
            if f is None and needs[s]:
                return
            f = f or _Frame()
            got = {"camera"} if f.camera is not None else set()
            if not needs[s] <= got | set(f.masks) | ({"depth"} if f.depth is not None else set()):
                return
            pending.pop(s, None)
            frame_set.discard(s)  # a later duplicate of this stamp must not start a new frame
            layout.fit(f)
            img = _compose(f, index, s, (s - t0) / 1e9, done, len(frames), scale, layout)
            if writer is None:
                writer = _Video(out, fps, (img.shape[1], img.shape[0]))
            writer.write(img)
            if done in sheet_at:
                sheet.append(img)
            done += 1
            bar.update(1)

    # rosbags reads every topic when given no connections: a bag with boxes only has no image messages to read.
    conns = [c for c in reader.connections if c.topic in topic_part]
    try:
        emit_ready()
        for conn, _t, raw in reader.messages(connections=conns) if conns else ():
            msg = reader.deserialize(raw, conn.msgtype)
            s = _stamp(msg)
            part = topic_part[conn.topic]
            if s not in frame_set or part not in needs[s]:
                continue
            f = pending.setdefault(s, _Frame())
            try:
                if part == "camera":
                    if f.camera is None:
                        rgb = decode_image_msg(msg)
                        f.source_size = (rgb.shape[1], rgb.shape[0])
                        layout.learn(f.source_size)
                        f.camera = cv2.resize(rgb, layout.panel, interpolation=cv2.INTER_AREA)
                elif part == "depth":
                    if f.depth is None:
                        f.depth = dense_array(msg).astype(np.float32, copy=False)
                elif part not in f.masks:
                    f.masks[part] = dense_array(msg)
            except ImageError as exc:
                # A frame that cannot be decoded stays in the report, with this panel marked as such.
                needs[s].discard(part)
                index.failures.setdefault(conn.topic, []).append(f"at {(s - t0) / 1e9:.2f} s: {exc}")
            emit_ready()
        # Whatever is still incomplete (a message that failed to arrive) is shown as it is.
        for s in frames[done:]:
            needs[s] = set()
        emit_ready()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    assert writer is not None  # frames is not empty
    return done, writer.path, sheet, writer.check()


class _Video:
    """report.mp4 (mp4v); MJPG in report.avi where this OpenCV build cannot write MPEG-4."""

    def __init__(self, out: Path, fps: float, size: tuple[int, int]) -> None:
        self.path, self.note = out / "report.mp4", ""
        self._w = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self._w.isOpened():
            self.path = out / "report.avi"
            self.note = "this OpenCV cannot write MPEG-4 (mp4v): the video is MJPG in report.avi"
            self._w = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
            if not self._w.isOpened():
                raise ReportError(f"OpenCV {cv2.__version__} can write neither mp4v nor MJPG video here")

    def write(self, rgb: np.ndarray) -> None:
        self._w.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._w.release()

    def check(self) -> str:
        """Read the written file back: a writer that opened can still produce nothing a player reads."""
        cap = cv2.VideoCapture(str(self.path))
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        if not ok:
            return f"{self.note + '; ' if self.note else ''}OpenCV cannot read back {self.path.name}"
        return self.note


@dataclass
class _Layout:
    """Panel size, from the camera's aspect ratio (the first camera image, else the dense outputs')."""

    height: int
    panel: tuple[int, int] = (0, 0)
    source: tuple[int, int] | None = None  # the camera's size, for frames whose own image is missing

    def learn(self, size: tuple[int, int], camera: bool = True) -> None:
        if camera:
            self.source = size
        if self.panel == (0, 0):
            w = round(self.height * size[0] / size[1])
            self.panel = (w + w % 2, self.height)  # even sizes: what video codecs want

    def fit(self, f: _Frame) -> None:
        """Fix the panel size on the first composed frame if no camera image said it yet."""
        if self.panel == (0, 0):
            dense = f.depth if f.depth is not None else next(iter(f.masks.values()), None)
            self.learn((dense.shape[1], dense.shape[0]) if dense is not None else (16, 9), camera=False)


# --- drawing -------------------------------------------------------------------------------------------------------

def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.55,
          colour: tuple[int, int, int] = (240, 240, 240), thickness: int = 1) -> None:
    """Text with a dark outline: legible on any picture. The outline is the same text shifted by a pixel each way,
    not a thicker stroke: OpenCV 5 draws a thicker stroke as a wider bold face, which would not line up."""
    x, y = org
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1), (1, 1)):
        cv2.putText(img, text, (x + dx, y + dy), FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, colour, thickness, cv2.LINE_AA)


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    strip = np.empty((TITLE_HEIGHT, panel.shape[1], 3), np.uint8)
    strip[:] = TITLE_BG
    cv2.putText(strip, title, (8, TITLE_HEIGHT - 9), FONT, 0.6, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([strip, panel])


def _empty(size: tuple[int, int], what: str, heading: str = "no output") -> np.ndarray:
    """The panel of an output (or image) this frame lacks: said, not skipped."""
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = EMPTY_BG
    for text, scale, thickness, dy in ((heading, 1.0, 2, -8), (what, 0.55, 1, 24)):
        (tw, _), _ = cv2.getTextSize(text, FONT, scale, thickness)
        cv2.putText(img, text, ((w - tw) // 2, h // 2 + dy), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return img


def _mask_colour(task: str, class_id: int) -> tuple[int, int, int]:
    # Class 1 of each task in the overlay's colour for that task (drivable green, lanes yellow); further classes
    # (an "alternative" drivable class) in the colours left over.
    first = MASKS.index(task) if task in MASKS else 0
    return SEGMENT_COLOURS[(first + 2 * (class_id - 1)) % len(SEGMENT_COLOURS)]


def _segments_panel(base: np.ndarray, f: _Frame, index: _Index) -> np.ndarray:
    img = base.copy()
    size = (img.shape[1], img.shape[0])
    legend = []
    for task in MASKS:
        if task not in f.masks:
            continue
        ids = cv2.resize(f.masks[task], size, interpolation=cv2.INTER_NEAREST)
        names = index.labels.get(task, [])
        for c in range(1, int(ids.max()) + 1):
            mask = ids == c
            if mask.any():
                # Lane lines are a few pixels wide: a stronger tint keeps them visible at panel size.
                tint(img, mask, _mask_colour(task, c), MASK_ALPHA if task == "drivable_area" else 0.8)
        for c in range(1, max(len(names), 2)):
            name = names[c] if c < len(names) else task
            legend.append((_mask_colour(task, c), name.replace("_", " ")))
    if legend:
        # A darkened box behind the legend: legible over road, sky and tint alike.
        h = img.shape[0]
        box_w = 34 + max(cv2.getTextSize(name, FONT, 0.5, 1)[0][0] for _, name in legend)
        behind = img[h - 12 - 20 * len(legend) : h - 4, 4 : 4 + box_w]
        behind[:] = (behind * 0.35).astype(np.uint8)
        for k, (colour, name) in enumerate(legend):
            y = h - 12 - 20 * (len(legend) - 1 - k)
            cv2.rectangle(img, (10, y - 11), (23, y + 1), colour, -1)
            cv2.putText(img, name, (30, y), FONT, 0.5, (240, 240, 240), 1, cv2.LINE_AA)
    return img


@dataclass(frozen=True)
class _DepthScale:
    """colourise_depth's inverse-depth colours, between `near` and `far` metres.

    colourise_depth spans 1 m .. max_depth; a dashcam sees no road nearer than ~5 m, so everything it shows would
    sit in turbo's blue third. Depth divided by `near` on a range of far / near is the same inverse scale with its
    red end at `near` metres: the node's colour map, stretched over what a camera actually sees."""

    near: float
    far: float

    def colours(self, depth: np.ndarray) -> np.ndarray:
        return colourise_depth(depth / np.float32(self.near), self.far / self.near)

    def fraction(self, d: float) -> float:
        """0 at `far` .. 1 at `near`: where `d` lies on the colour bar."""
        return (self.near / min(max(d, self.near), self.far) - self.near / self.far) / (1.0 - self.near / self.far)

    def depth_at(self, fraction: np.ndarray) -> np.ndarray:
        """The inverse of `fraction`."""
        return self.near / (fraction * (1.0 - self.near / self.far) + self.near / self.far)

    def ticks(self, height: int) -> list[float]:
        """Values to label on a bar `height` px tall, far to near, at least 16 px apart."""
        candidates = [v for v in (1, 2, 3, 5, 10, 20, 40, 80, 150, 300) if self.near < v < self.far]
        ticks: list[float] = []
        for v in [*reversed(candidates), self.near]:
            if (self.fraction(v) - self.fraction((ticks or [self.far])[-1])) * height < 16:
                if v != self.near:
                    continue
                ticks = ticks[:-1]  # both ends are always labelled: the near end takes a crowded neighbour's place
            ticks.append(v)
        return [self.far, *ticks]


def _depth_panel(depth: np.ndarray, size: tuple[int, int], scale: _DepthScale) -> np.ndarray:
    img = cv2.resize(scale.colours(depth), size, interpolation=cv2.INTER_NEAREST)
    w, h = size
    top, bottom, bar_w = 14, h - 14, 14
    x0 = w - 62
    # The bar is made of depths run through the same colour map, so it can never disagree with the picture.
    bar = scale.colours(scale.depth_at(np.linspace(0.0, 1.0, bottom - top, dtype=np.float32))[:, None]
                        .repeat(bar_w, axis=1))
    behind = img[top - 8 : bottom + 8, x0 - 6 : w - 4]
    behind[:] = (behind * 0.35).astype(np.uint8)  # darken what is behind the legend
    img[top:bottom, x0 : x0 + bar_w] = bar
    for v in scale.ticks(bottom - top):
        y = top + round(scale.fraction(v) * (bottom - top - 1))
        cv2.line(img, (x0 + bar_w, y), (x0 + bar_w + 4, y), (255, 255, 255), 1)
        _text(img, f"{v:g}", (x0 + bar_w + 7, min(max(y + 5, top + 8), bottom + 4)), 0.42)
    return img


def _boxes_panel(base: np.ndarray, boxes: list[Box], f: _Frame, index: _Index,
                 known_source: tuple[int, int] | None) -> tuple[np.ndarray, int]:
    """Boxes with class, score and distance; the number drawn."""
    img = base.copy()
    pw, ph = img.shape[1], img.shape[0]
    dense = f.depth
    src = f.source_size or known_source or ((dense.shape[1], dense.shape[0]) if dense is not None else (pw, ph))
    sx, sy = pw / src[0], ph / src[1]
    classes = index.labels.get("detections", [])
    for b in sorted(boxes, key=lambda b: b.score):  # best last: drawn on top
        distance = None
        if dense is not None:
            # Distance as the node computes it (box_distance on its depth image, boxes scaled source -> dense),
            # rather than from detections_3d: that topic is optional (published only to subscribers), and it
            # skips boxes without a distance, so its entries cannot be paired with the 2D boxes by position.
            dx, dy = dense.shape[1] / src[0], dense.shape[0] / src[1]
            distance = box_distance(dense, (b.x1 * dx, b.y1 * dy, b.x2 * dx, b.y2 * dy))
        cls = classes.index(b.label) if b.label in classes else 0
        colour = BOX_COLOURS[cls % len(BOX_COLOURS)]
        p1 = (round(b.x1 * sx), round(b.y1 * sy))
        p2 = (round(b.x2 * sx), round(b.y2 * sy))
        cv2.rectangle(img, p1, p2, colour, 2)
        label = f"{b.label} {b.score:.2f}" + (f" {distance:.1f} m" if distance is not None else "")
        (tw, th), base_line = cv2.getTextSize(label, FONT, 0.45, 1)
        y = max(p1[1], th + base_line + 3)
        x = min(max(p1[0], 0), pw - tw - 3)
        cv2.rectangle(img, (x, y - th - base_line - 3), (x + tw + 3, y), colour, -1)
        cv2.putText(img, label, (x + 1, y - base_line - 1), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img, len(boxes)


def _compose(f: _Frame, index: _Index, stamp: int, t: float, i: int, n: int, scale: _DepthScale,
             layout: _Layout) -> np.ndarray:
    """The four titled panels of one frame side by side (RGB)."""
    size = layout.panel
    source = "camera" if index.image_topic else ("overlay" if "overlay" in index.topics else "no camera")
    if f.camera is not None:
        base = f.camera
    else:
        base = np.empty((size[1], size[0], 3), np.uint8)
        base[:] = (96, 96, 96)
    why = f"no {source} image for this stamp" if source != "no camera" else "the bag holds no camera images"
    camera = base if f.camera is not None else _empty(size, why, "no image")
    panels = [_titled(camera, f"{source} {t:.2f} s   (frame {i + 1}/{n})")]
    if f.masks:
        panels.append(_titled(_segments_panel(base, f, index), "drivable + lanes"))
    else:
        panels.append(_titled(_empty(size, f"no {' / '.join(MASKS)} for this stamp"), "drivable + lanes"))
    if f.depth is not None:
        panels.append(_titled(_depth_panel(f.depth, size, scale), "depth (m)   black: beyond range"))
    else:
        panels.append(_titled(_empty(size, "no depth for this stamp"), "depth (m)"))
    if stamp in index.boxes:
        img, count = _boxes_panel(base, index.boxes[stamp], f, index, layout.source)
        panels.append(_titled(img, f"detections: {count}"))
    else:
        panels.append(_titled(_empty(size, "no detections message for this stamp"), "detections"))
    gap = np.empty((panels[0].shape[0], GAP, 3), np.uint8)
    gap[:] = BACKGROUND
    row = [panels[0]]
    for p in panels[1:]:
        row += [gap, p]
    return np.hstack(row)


def _contact_sheet(rows: list[np.ndarray], header: list[str]) -> np.ndarray:
    width = rows[0].shape[1]
    head = np.empty((24 + 30 * len(header), width, 3), np.uint8)
    head[:] = BACKGROUND
    for k, line in enumerate(header):
        scale, thick = (0.95, 2) if k == 0 else (0.6, 1)
        cv2.putText(head, line, (10, 34 + 30 * k), FONT, scale, (240, 240, 240), thick, cv2.LINE_AA)
    parts = [head]
    for r in rows:
        sep = np.empty((2 * GAP, width, 3), np.uint8)
        sep[:] = BACKGROUND
        parts += [r, sep]
    sheet = np.vstack(parts)
    if sheet.shape[1] > MAX_SHEET_WIDTH:
        scale = MAX_SHEET_WIDTH / sheet.shape[1]
        sheet = cv2.resize(sheet, (MAX_SHEET_WIDTH, round(sheet.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return sheet


def _sheet_header(bag: Path, index: _Index, summary: dict[str, Any]) -> list[str]:
    engine = summary["engine"]
    model = engine.get("model") or "model unknown (no /diagnostics in the bag)"
    sha = engine.get("model_sha256", "")
    line2 = f"model {model}" + (f" (sha256 {sha[:12]})" if sha else "") + (
        f" on {engine['engine']}" if engine.get("engine") else "")
    cam = summary["cameras"].get(index.camera, {})
    infer = cam.get("latency_ms", {}).get("infer")
    picture = index.image_topic or {"overlay": f"{index.base}/overlay", "grey": "no camera images"}[
        summary["camera_panel"]]
    line3 = (f"camera {index.camera}: {picture}  ->  {index.base}/*   "
             f"{summary['frames']} frames over {summary['duration_s']:.1f} s   video {summary['fps']:.1f} fps"
             + (f"   infer {infer['mean']:.0f} ms mean" if infer else ""))
    return [f"hydranet report: {bag.name}", line2, line3, summary["completeness"]]


# --- diagnostics and the summary -----------------------------------------------------------------------------------

def _number(value: str) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None  # "n/a": a period without frames
    return v if np.isfinite(v) else None


def _status_camera(status: Any) -> str | None:
    """The camera a hydranet status is about ("hydranet: camera front", or hardware_id), "engine", or None."""
    name = str(status.name)
    if not name.startswith("hydranet:"):
        return None
    rest = name.split(":", 1)[1].strip()
    if rest == "engine":
        return "engine"
    return str(status.hardware_id) or rest.rsplit(" ", 1)[-1]


def summarise_diagnostics(arrays: list[Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per camera: mean and max of each latency over the periods that had frames (a value other than "n/a"),
    mean input/output rates over those periods, the last totals; and the engine's description and model.

    A period's mean is what the node reports for it, so the mean here is the mean of period means (each period
    is one diagnostics_period_s, so periods weigh the same); the max is the largest period max."""
    periods: dict[str, list[dict[str, str]]] = {}
    engine: dict[str, Any] = {}
    batch_sizes = []
    for array in arrays:
        for st in array.status:
            who = _status_camera(st)
            values = {str(kv.key): str(kv.value) for kv in st.values}
            if who == "engine":
                engine.update({k: values[k] for k in ("engine", "model", "model_sha256", "mode", "passes_total")
                               if values.get(k)})
                if _number(values.get("mean_batch_size", "")) is not None:
                    batch_sizes.append(float(values["mean_batch_size"]))
            elif who is not None:
                periods.setdefault(who, []).append(values)
    if batch_sizes:
        engine["mean_batch_size"] = round(float(np.mean(batch_sizes)), 2)
    cameras = {}
    for cam, ps in periods.items():
        keys = [k for k in dict.fromkeys(k for p in ps for k in p) if k.startswith("latency_") and k.endswith("_ms")]
        order = {f"latency_{s}_ms": i for i, s in enumerate(STAGES)}
        keys.sort(key=lambda k: order.get(k, len(order)))
        busy = [p for p in ps if any(_number(p.get(k, "")) is not None for k in keys)]
        latency: dict[str, dict[str, float]] = {}
        for key in [*keys, "age_at_publish_ms", "stamp_age_at_publish_ms"]:
            means = [v for p in busy if (v := _number(p.get(key, ""))) is not None]
            maxes = [v for p in busy if (v := _number(p.get(key + "_max", p.get(key, "")))) is not None]
            p95s = [v for p in busy if (v := _number(p.get(key + "_p95", ""))) is not None]
            if means:
                label = key[len("latency_"):-len("_ms")] if key.startswith("latency_") else key[:-len("_ms")]
                latency[label] = {"mean": round(float(np.mean(means)), 2), "max": round(float(np.max(maxes)), 2),
                                  "periods": len(means)}
                if p95s:  # the worst period's p95: a bound, not an average
                    latency[label]["p95"] = round(float(np.max(p95s)), 2)
        rates = {k: round(float(np.mean(vs)), 2) for k in ("input_rate_hz", "output_rate_hz")
                 if (vs := [v for p in busy if (v := _number(p.get(k, ""))) is not None])}
        last = ps[-1]
        totals = {k: int(v) for k, v in last.items() if k.endswith("_total") and _number(v) is not None}
        cameras[cam] = {"periods": len(ps), "periods_with_frames": len(busy), "latency_ms": latency, **rates,
                        "totals": totals}
    return cameras, engine


def _summary(bag: Path, index: _Index, frames: list[int], topics: dict[str, dict[str, Any]], fps: float,
             video: Path) -> dict[str, Any]:
    cameras, engine = summarise_diagnostics(index.diagnostics)
    missing = {}
    absent = [name for name in OUTPUTS if name not in index.topics]  # not in the bag at all
    for name in OUTPUTS:
        have = index.stamps.get(name, set())
        missing[name] = sum(s not in have for s in frames)
    if index.image_topic:
        missing["camera image"] = sum(s not in index.image_stamps for s in frames)
    for topic, errors in index.failures.items():
        missing[f"decodable {topic}"] = len(errors)
    lacking = {k: v for k, v in missing.items() if v and k not in absent}
    if lacking:
        completeness = "; ".join(f"{v} of {len(frames)} frames lack {k.replace('_', ' ') if k in OUTPUTS else k}"
                                 for k, v in lacking.items())
    else:
        completeness = f"all {len(frames)} frames have every output" + (" recorded" if absent else "")
    if absent:
        completeness += f"; not in the bag: {', '.join(f'{index.base}/{name}' for name in absent)}"
    if index.duplicates:
        index.notes.append("stamps seen twice (shown once, the first): " + ", ".join(
            f"{name} {n}" for name, n in index.duplicates.items()))
    unanswered = len(index.image_stamps - set(frames))
    if unanswered:
        completeness += f"; {unanswered} camera images have no output at all (dropped by the node?)"
    relevant = [t for t in topics if t.startswith(index.base + "/") or t in (index.image_topic, "/diagnostics")]
    return {
        "bag": str(bag), "camera": index.camera, "base": index.base, "cameras_in_bag": index.bases,
        "image_topic": index.image_topic,
        "camera_panel": "camera" if index.image_topic else ("overlay" if "overlay" in index.topics else "grey"),
        "frames": len(frames), "duration_s": round((frames[-1] - frames[0]) / 1e9, 3), "fps": round(fps, 3),
        "video": video.name, "missing": missing, "completeness": completeness,
        "camera_images_without_output": unanswered,
        "duplicate_stamps": dict(index.duplicates),
        "topics": topics, "relevant_topics": relevant, "cameras": cameras, "engine": engine, "notes": index.notes,
    }


def _latency_table(cam: dict[str, Any]) -> list[str]:
    rows = ["| stage | mean (ms) | max (ms) | periods |", "|---|---:|---:|---:|"]
    ages = ("age_at_publish", "stamp_age_at_publish")
    stages = {k: v for k, v in cam.get("latency_ms", {}).items() if k not in ages}
    for k, v in stages.items():
        rows.append(f"| {k} | {v['mean']:.2f} | {v['max']:.2f} | {v['periods']} |")
    if stages:
        rows.append(f"| **all stages (sum of means)** | {sum(v['mean'] for v in stages.values()):.2f} | | |")
    for key, what in zip(ages, ("arrival in the node to publish", "frame's stamp to publish"), strict=True):
        if age := cam.get("latency_ms", {}).get(key):
            p95 = f", p95 {age['p95']:.2f}" if "p95" in age else ""
            rows.append(f"| age at publish ({what}{p95}) | {age['mean']:.2f} | {age['max']:.2f} | {age['periods']} |")
    return rows


def _texts(bag: Path, out: Path, index: _Index, s: dict[str, Any], video: Path, sheet: Path) -> tuple[str, str]:
    """(the text printed at the end, summary.md)."""
    lines = [f"hydranet report of {bag}: camera {index.camera} ({index.base}/*), camera images from "
             + (index.image_topic or {"overlay": f"{index.base}/overlay", "grey": "nowhere (grey)"}[s["camera_panel"]])]
    if len(index.bases) > 1:
        lines.append(f"cameras in this bag: {', '.join(index.bases)} (pick one with --camera NAME)")
    lines.append(f"frames: {s['frames']} over {s['duration_s']:.2f} s; {s['completeness']}")
    ours = [t for t in s["relevant_topics"] if t.startswith(index.base + "/")]
    others = [t for t in s["relevant_topics"] if t not in ours]
    lines.append("messages: " + ", ".join(f"{t} {s['topics'][t]['count']}" for t in others) + f"; under {index.base}/: "
                 + ", ".join(f"{t[len(index.base) + 1:]} {s['topics'][t]['count']}" for t in ours))
    engine = s["engine"]
    if engine:
        lines.append(f"model: {engine.get('model', '?')} (sha256 {engine.get('model_sha256', '?')[:12]}) on "
                     f"{engine.get('engine', '?')}, {engine.get('passes_total', '?')} passes, mean batch "
                     f"{engine.get('mean_batch_size', 'n/a')}")
    cam = s["cameras"].get(index.camera)
    table: list[str] = []
    if cam is None:
        lines.append("/diagnostics: none for this camera in the bag (no latency summary)")
    else:
        t = cam["totals"]
        drops = ", ".join(f"{k[len('dropped_'):-len('_total')]} {v}" for k, v in t.items() if k.startswith("dropped_"))
        lines.append(f"/diagnostics: {cam['periods_with_frames']} of {cam['periods']} periods had frames; in "
                     f"{cam.get('input_rate_hz', 'n/a')} Hz, out {cam.get('output_rate_hz', 'n/a')} Hz; received "
                     f"{t.get('received_total', '?')}, published {t.get('published_total', '?')}, dropped: "
                     f"{drops or 'n/a'}, lost before reaching the node: {t.get('lost_in_transport_total', 'n/a')}")
        table = _latency_table(cam)
    lines += [f"note: {n}" for n in index.notes]
    text = "\n".join([*lines, *table, f"wrote {video.name} ({s['frames']} frames at {s['fps']:.1f} fps), "
                      f"{sheet.name}, summary.md, summary.json in {out}"])
    md = [f"# hydranet report: {bag.name}", "", *[f"- {line}" for line in lines], ""]
    if table:
        md += [f"## Latency of camera {index.camera} (/diagnostics)", "", *table, ""]
    md += ["## Topics", "", "| topic | type | messages |", "|---|---|---:|"]
    md += [f"| {t} | {v['type']} | {v['count']} |" for t, v in s["topics"].items()]
    md += ["", f"Files: [{video.name}]({video.name}), [{sheet.name}]({sheet.name}), [summary.json](summary.json)", ""]
    return text, "\n".join(md)
