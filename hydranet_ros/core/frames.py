"""Frame sources: image folders, videos and bags as they sit on disk, and the intrinsics JSON that describes their
camera. Shared by the importers (training data) and the bag tools (make_bag), which must agree on what a source is
and in which order its frames come."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydranet_ros.core.geometry import Intrinsics
from hydranet_ros.core.images import compressed_kind, jpeg_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
BAG_SUFFIXES = (".mcap", ".db3", ".bag")
IntrinsicsTuple = tuple[float, float, float, float]  # fx, fy, cx, cy as a manifest stores them
HEADER_READ = 8 << 10  # bytes image_size reads first; up to MAX_HEADER_READ when a JPEG's header is further in
MAX_HEADER_READ = 256 << 10


class FrameSourceError(ValueError):
    """A source or intrinsics file that cannot be read; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics measured at `size` (width, height); None: valid at any image size."""

    fx: float
    fy: float
    cx: float
    cy: float
    size: tuple[int, int] | None = None

    def at(self, size: tuple[int, int]) -> IntrinsicsTuple:
        """The intrinsics for an image of `size`, scaled from the calibrated size (core.geometry's convention)."""
        k = Intrinsics(self.fx, self.fy, self.cx, self.cy)
        if self.size is None or tuple(size) == tuple(self.size):
            return k.as_tuple()
        try:
            return k.resized(self.size, size).as_tuple()
        except ValueError as exc:
            raise FrameSourceError(str(exc)) from None


def read_intrinsics_json(path: str | Path) -> Camera:
    """An intrinsics JSON: {"K": 3x3, "image_size_wh": [w, h] (optional)} (udacity/camera_intrinsics.json), or
    {"fx", "fy", "cx", "cy"} with an optional "image_size_wh"."""
    path = Path(path)
    spec = read_json(path)
    try:
        if "K" in spec:
            k = spec["K"]
            fx, fy, cx, cy = k[0][0], k[1][1], k[0][2], k[1][2]
        else:
            fx, fy, cx, cy = spec["fx"], spec["fy"], spec["cx"], spec["cy"]
        size = spec.get("image_size_wh")
        camera = Camera(float(fx), float(fy), float(cx), float(cy), (int(size[0]), int(size[1])) if size else None)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise FrameSourceError(f"{path}: intrinsics JSON needs 'K' (3x3) or fx, fy, cx, cy ({exc!r})") from exc
    if camera.fx <= 0 or camera.fy <= 0:
        raise FrameSourceError(f"{path}: fx and fy must be > 0")
    return camera


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image, from the PNG or JPEG header when it is one (no decoding: BDD100K's 100k frames
    would take minutes to decode); other formats, and JPEGs whose frame header lies beyond the first 256 KiB (huge
    EXIF blocks), are decoded. EXIF orientation is not applied."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(HEADER_READ)
        kind = compressed_kind(head)
        if kind == "png" and len(head) >= 24:
            return struct.unpack(">II", head[16:24])
        if kind == "jpeg":
            # The frame header usually follows within a few KiB; a large EXIF block pushes it further.
            size = jpeg_size(head) or jpeg_size(head + f.read(MAX_HEADER_READ - len(head)))
            if size:
                return size
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FrameSourceError(f"cannot read image {path}")
    return img.shape[1], img.shape[0]


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise FrameSourceError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FrameSourceError(f"{path}: not JSON ({exc})") from exc


def require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FrameSourceError(f"{what} {path} is not a folder" if path.exists() else f"{what} {path} does not exist")
    return path


def natural_key(text: str) -> list[Any]:
    """Sort key that puts frame_9 before frame_10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def frames_kind(src: str | Path) -> str:
    """"bag" (a rosbag2 folder, or an .mcap/.db3/.bag file), "folder" (of images) or "video"."""
    src = Path(src)
    if not src.exists():
        raise FrameSourceError(f"{src} does not exist")
    if src.is_dir():
        return "bag" if (src / "metadata.yaml").is_file() else "folder"
    return "bag" if src.suffix.lower() in BAG_SUFFIXES else "video"


def list_images(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    folder = require_dir(Path(folder), "image folder")
    found = folder.rglob("*") if recursive else folder.iterdir()
    images = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not images:
        bags = [p.name for p in folder.iterdir() if p.suffix in BAG_SUFFIXES]
        hint = f" (for a bag without metadata.yaml pass the file: {bags[0]})" if bags else ""
        raise FrameSourceError(f"no jpg/jpeg/png images in {folder}{' or below' if recursive else ''}{hint}")
    return sorted(images, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def video_frames(cap: Any, every: int, max_frames: int | None) -> Iterator[tuple[int, Any]]:
    i = taken = 0
    while max_frames is None or taken < max_frames:
        if i % every:
            ok, frame = cap.grab(), None  # skipped frames are demuxed but not converted
        else:
            ok, frame = cap.read()
        if not ok:
            return
        if frame is not None:
            taken += 1
            yield i, frame
        i += 1
