"""The visual report of a drive: what hydranet_node published, read back from a bag (rosbags + OpenCV, no rclpy).

For one camera of the node, every frame (an input stamp with at least one output) becomes four panels side by
side: the camera image | drivable area + lane lines tinted over it | the depth colour map with its scale | the
boxes with class, score and distance. They go into a video (report.mp4) and, for a few frames evenly spread over
the drive, a contact sheet (contact_sheet.png); /diagnostics becomes a latency summary (summary.md,
summary.json). Outputs are matched to their input frame by header stamp (exact nanoseconds): the node copies the
camera's header onto everything it publishes.

Two passes over the bag: the first reads the small messages (boxes, diagnostics, labels) and every stamp, so that
the second, over the images, knows when a frame is complete and which frames go onto the sheet, and holds only
the few frames whose outputs are still to come: index.py is the first pass, panels.py the second (the pictures),
summary.py the diagnostics and texts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from hydranet_ros.bags.report.index import ReportError, bag_topics, frame_rate, read_index
from hydranet_ros.bags.report.panels import MIN_DEPTH, PANEL_HEIGHT, DepthScale, contact_sheet, render, sheet_header
from hydranet_ros.bags.report.summary import summarise, texts
from hydranet_ros.bags.rosbag import open_reader


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
        index = read_index(reader, bag, camera, image_topic)
        frames = sorted(set().union(*(index.stamps.get(name, set()) for name in index.outputs)))
        if not frames:
            raise ReportError(f"{bag}: the node's output topics under {index.base} hold no messages")
        rate = fps if fps else frame_rate(frames)
        topics = bag_topics(reader)
        out.mkdir(parents=True, exist_ok=True)
        scale = DepthScale(min_depth, max_depth)
        rendered, video, sheet_rows_img, video_note = render(reader, index, frames, out, rate, sheet_rows, scale,
                                                              progress, panel_height)
    finally:
        reader.close()
    if video_note:
        index.notes.append(video_note)
    for topic, errors in index.failures.items():
        index.notes.append(f"{len(errors)} message(s) of {topic} could not be decoded (shown as no output); "
                           f"first {errors[0]}")
    summary = summarise(bag, index, frames, topics, rate, video)
    sheet = out / "contact_sheet.png"
    picture = contact_sheet(sheet_rows_img, sheet_header(bag, index, summary))
    # zlib level 6: half the size of OpenCV's default for 0.3 s more (level 9 saves 3 % more for 3 s)
    cv2.imwrite(str(sheet), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    text, markdown = texts(bag, out, index, summary, video, sheet)
    (out / "summary.md").write_text(markdown)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return Report(out, video, sheet, out / "summary.md", out / "summary.json", rendered, text, index.camera, rate,
                  summary)
