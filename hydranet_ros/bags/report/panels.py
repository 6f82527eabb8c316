"""The second pass: the pictures. Each frame's four panels (camera | drivable area + lanes | depth | boxes) into the
video, and the contact sheet."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hydranet_ros.bags.report.index import Box, Frame, Ground, Index, ReportError, dense_array, stamp_of
from hydranet_ros.core.images import ImageError, decode_image_msg
from hydranet_ros.core.progress import show_progress
from hydranet_ros.runtime.overlay import BOX_COLOURS, MASK_ALPHA, SEGMENT_COLOURS, colourise_depth, tint
from hydranet_ros.runtime.postprocess import box_distance

PANEL_HEIGHT = 360  # 16:9 cameras give 640x360 panels: 4 of them make a 2572 px wide frame with the gaps
TITLE_HEIGHT = 30
GAP = 4  # between panels, and (x2) between the rows of the contact sheet
MAX_SHEET_WIDTH = 2600
MIN_DEPTH = 3.0  # near end of the depth colours: a dashcam sees no road nearer than ~5 m (see DepthScale)
BACKGROUND = (24, 24, 24)
TITLE_BG = (40, 40, 40)
EMPTY_BG = (64, 64, 64)
FONT = cv2.FONT_HERSHEY_SIMPLEX


# --- second pass: pictures -----------------------------------------------------------------------------------------

def render(reader: Any, index: Index, frames: list[int], out: Path, fps: float, sheet_rows: int,
            scale: DepthScale, progress: bool, panel_height: int) -> tuple[int, Path, list[np.ndarray], str]:
    """Stream the image messages, compose each complete frame in stamp order into the video; keep the sheet's
    frames. Returns (frames rendered, video path, sheet rows, a note on the video format or "")."""
    picture = index.image_topic or index.topics.get("overlay")
    parts = {name: index.topics[name] for name in (*index.masks, index.depth) if name in index.topics}
    have_picture = index.image_stamps if index.image_topic else index.stamps.get("overlay", set())
    frame_set = set(frames)
    # What each frame waits for: the image messages this bag holds for its stamp.
    needs = {s: {n for n in parts if s in index.stamps[n]} | ({"camera"} if s in have_picture else set())
             for s in frames}
    topic_part = {t: n for n, t in parts.items()}
    if picture:
        topic_part[picture] = "camera"
    pending: dict[int, Frame] = {}
    sheet_at = set(np.linspace(0, len(frames) - 1, min(sheet_rows, len(frames))).round().astype(int).tolist())
    t0 = frames[0]
    writer: _Video | None = None
    sheet: list[np.ndarray] = []
    layout = _Layout(panel_height - panel_height % 2)
    if index.source_size:
        layout.learn(index.source_size)
    bar = show_progress(total=len(frames), desc="hydranet report", unit="frame", file=sys.stderr, enabled=progress)
    done = 0

    def emit_ready() -> None:
        nonlocal done, writer
        while done < len(frames):
            s = frames[done]
            f = pending.get(s)
            if f is None and needs[s]:
                return
            f = f or Frame()
            got = {"camera"} if f.camera is not None else set()
            if not needs[s] <= got | set(f.masks) | ({index.depth} if f.depth is not None else set()):
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
            s = stamp_of(msg)
            part = topic_part[conn.topic]
            if s not in frame_set or part not in needs[s]:
                continue
            f = pending.setdefault(s, Frame())
            try:
                if part == "camera":
                    if f.camera is None:
                        rgb = decode_image_msg(msg)
                        f.source_size = (rgb.shape[1], rgb.shape[0])
                        layout.learn(f.source_size)
                        f.camera = cv2.resize(rgb, layout.panel, interpolation=cv2.INTER_AREA)
                elif part == index.depth:
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

    def fit(self, f: Frame) -> None:
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


def _mask_colour(masks: list[str], task: str, class_id: int) -> tuple[int, int, int]:
    # Class 1 of each task in the overlay's colour for that task (drivable green, lanes yellow, then the other
    # heads'); further classes (an "alternative" drivable class) in the colours after the tasks' own.
    first = masks.index(task) if task in masks else 0
    return SEGMENT_COLOURS[(first + len(masks) * (class_id - 1)) % len(SEGMENT_COLOURS)]


def _segments_panel(base: np.ndarray, f: Frame, index: Index) -> np.ndarray:
    img = base.copy()
    size = (img.shape[1], img.shape[0])
    legend = []
    for task in index.masks:
        if task not in f.masks:
            continue
        ids = cv2.resize(f.masks[task], size, interpolation=cv2.INTER_NEAREST)
        names = index.labels.get(task, [])
        for c in range(1, int(ids.max()) + 1):
            mask = ids == c
            if mask.any():
                # Lane lines are a few pixels wide: a stronger tint keeps them visible at panel size.
                tint(img, mask, _mask_colour(index.masks, task, c), MASK_ALPHA if task != "lane_lines" else 0.8)
        for c in range(1, max(len(names), 2)):
            name = names[c] if c < len(names) else task
            legend.append((_mask_colour(index.masks, task, c), name.replace("_", " ")))
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
class DepthScale:
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


def _depth_panel(depth: np.ndarray, size: tuple[int, int], scale: DepthScale) -> np.ndarray:
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


def _boxes_panel(base: np.ndarray, boxes: list[Box], f: Frame, index: Index,
                 known_source: tuple[int, int] | None) -> tuple[np.ndarray, int]:
    """Boxes with class, score and distance; the number drawn."""
    img = base.copy()
    pw, ph = img.shape[1], img.shape[0]
    dense = f.depth
    src = f.source_size or known_source or ((dense.shape[1], dense.shape[0]) if dense is not None else (pw, ph))
    sx, sy = pw / src[0], ph / src[1]
    classes = next((index.labels[n] for n in index.detections if n in index.labels), [])
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


def _compose(f: Frame, index: Index, stamp: int, t: float, i: int, n: int, scale: DepthScale,
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
    title = " + ".join(m.replace("_", " ") for m in index.masks) or "segmentation"
    if f.masks:
        panels.append(_titled(_segments_panel(base, f, index), title))
    else:
        panels.append(_titled(_empty(size, f"no {' / '.join(index.masks) or 'masks'} for this stamp"), title))
    if f.depth is not None:
        panels.append(_titled(_depth_panel(f.depth, size, scale), f"{index.depth} (m)   black: beyond range"))
    else:
        panels.append(_titled(_empty(size, f"no {index.depth or 'depth'} for this stamp"),
                              f"{index.depth or 'depth'} (m)"))
    if stamp in index.boxes:
        img, count = _boxes_panel(base, index.boxes[stamp], f, index, layout.source)
        panels.append(_titled(img, f"detections: {count}"))
    else:
        panels.append(_titled(_empty(size, "no detections message for this stamp"), "detections"))
    if index.ground:  # the node had a mounting: the bird's-eye view
        g = index.ground.get(stamp)
        if g is not None and g.grid is not None:
            panels.append(_titled(_ground_panel(g, size), f"bird's eye: drivable grid, {len(g.lanes)} lane lines"))
        else:
            panels.append(_titled(_empty(size, "no drivable grid for this stamp"), "bird's eye"))
    gap = np.empty((panels[0].shape[0], GAP, 3), np.uint8)
    gap[:] = BACKGROUND
    row = [panels[0]]
    for p in panels[1:]:
        row += [gap, p]
    return np.hstack(row)


GRID_COLOURS = {0: (70, 170, 90), 100: (150, 60, 60), -1: (40, 40, 40)}  # free, occupied, unknown (RGB)


def _ground_panel(g: Ground, size: tuple[int, int]) -> np.ndarray:
    """The drivable grid seen from above, x (forward) up and y (left) to the left, with the lane polylines and a
    line every 10 m; scaled to fit the panel's height."""
    assert g.grid is not None
    rgb = np.empty((*g.grid.shape, 3), np.uint8)
    rgb[:] = GRID_COLOURS[-1]
    for value, colour in GRID_COLOURS.items():
        rgb[g.grid == value] = colour
    # Rows of the grid run along +y, columns along +x: rotate so that +x is up, and mirror so that +y is left.
    img = np.ascontiguousarray(np.rot90(rgb, k=1)[:, ::-1])
    ny, nx = g.grid.shape
    s = min(size[1] / nx, size[0] / ny)
    img = cv2.resize(img, (max(1, round(ny * s)), max(1, round(nx * s))), interpolation=cv2.INTER_NEAREST)

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        col = (ny - (y - g.origin[1]) / g.resolution) * s  # +y is left
        row = (nx - (x - g.origin[0]) / g.resolution) * s  # +x is up
        return np.stack([col, row], axis=1).round().astype(np.int32)

    for metres in range(10, int(g.origin[0] + nx * g.resolution) + 1, 10):
        ((_, row),) = to_px(np.array([float(metres)]), np.array([g.origin[1]]))
        cv2.line(img, (0, int(row)), (img.shape[1] - 1, int(row)), (90, 90, 90), 1)
        _text(img, f"{metres} m", (3, int(row) - 3), 0.4)
    for line in g.lanes:
        cv2.polylines(img, [to_px(line[:, 0], line[:, 1])], False, (255, 220, 40), 2, cv2.LINE_AA)
    out = np.empty((size[1], size[0], 3), np.uint8)
    out[:] = BACKGROUND
    h, w = min(img.shape[0], size[1]), min(img.shape[1], size[0])
    y0, x0 = (size[1] - h) // 2, (size[0] - w) // 2
    out[y0:y0 + h, x0:x0 + w] = img[:h, :w]
    return out


def contact_sheet(rows: list[np.ndarray], header: list[str]) -> np.ndarray:
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


def sheet_header(bag: Path, index: Index, summary: dict[str, Any]) -> list[str]:
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
