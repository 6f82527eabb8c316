"""make-bag: a video or an image folder -> a rosbag2 camera recording (Image or CompressedImage, + CameraInfo).

The bag looks like `ros2 bag record` of a camera driver: one image topic, CameraInfo beside it in the same
namespace, header stamps equal to the bag's receive timestamps, and the QoS that the driver's publisher offered
stored per connection (rosbag2's player reads reliability and durability from there). No rclpy: rosbags writes
it, so this works wherever the package is installed, with or without a ROS 2 install.

Frames are stamped `start + i / rate` exactly (integer nanoseconds computed from i, so no drift accumulates),
which is what a player reproduces; a real driver's stamps would jitter by a few milliseconds.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from hydranet_ros.bags.rosbag import typestore
from hydranet_ros.core import frames as sources
from hydranet_ros.core.geometry import Intrinsics
from hydranet_ros.core.progress import show_progress
from hydranet_ros.ros.params import camera_info_beside as camera_info_topic  # one naming rule, the node's

IMAGE_MSG = "sensor_msgs/msg/Image"
COMPRESSED_MSG = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_MSG = "sensor_msgs/msg/CameraInfo"
DEFAULT_TOPIC = "/camera/front/image_raw"
DEFAULT_FRAME_ID = "camera_front_optical"
FOLDER_RATE_HZ = 10.0  # an image folder carries no timing; 10 Hz is a common automotive camera rate
STORAGES = ("mcap", "sqlite3")
ROSBAG2_VERSION = 9  # what Jazzy's rosbag2 writes (type hashes, QoS as a YAML list)

# The QoS that `ros2 bag record` stores for a camera driver's publisher (rclpy, depth 10, the default profile) on
# Jazzy, as read back from the ROS graph (measured with get_publishers_info_by_topic): DDS discovery does not
# carry history or depth, so a real recording holds history "unknown", depth 0; durations are "infinite".
_INFINITE = QosTime(9223372036, 854775807)
CAMERA_QOS = Qos(QosHistory.UNKNOWN, 0, QosReliability.RELIABLE, QosDurability.VOLATILE, _INFINITE, _INFINITE,
                 QosLiveliness.AUTOMATIC, _INFINITE, avoid_ros_namespace_conventions=False)

# A ROS 2 topic name as rosbag2 stores it: absolute, tokens of [A-Za-z0-9_] not starting with a digit.
_TOPIC_RE = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)+$")


class MakeBagError(ValueError):
    """Input or output that make-bag cannot use; the message names the path and what is wrong."""


@dataclass(frozen=True)
class BagSummary:
    """What make_camera_bag wrote."""

    path: Path
    frames: int
    duration_s: float  # last stamp - first stamp, as rosbag2's metadata counts it
    size_bytes: int  # on disk, all files of the bag folder
    topics: dict[str, str]  # topic -> message type; each topic holds `frames` messages
    rate_hz: float = 0.0
    image_size: tuple[int, int] = (0, 0)  # (width, height) of the first frame
    storage: str = "mcap"


@dataclass
class _Frame:
    bgr: np.ndarray | None  # decoded pixels, or None when `jpeg` holds a file's original bytes
    size: tuple[int, int]  # (width, height) as written to the bag
    jpeg: bytes | None = None


# ((source width, height), frame) pairs; a generator, so that closing it releases a video early.
_Frames = Generator[tuple[tuple[int, int], _Frame], None, None]


@dataclass
class _Camera:
    """Intrinsics JSON contents, with the size K was calibrated at (None: the source frames' size)."""

    k: tuple[float, float, float, float]  # fx, fy, cx, cy
    size: tuple[int, int] | None
    d: list[float]  # plumb_bob k1 k2 p1 p2 k3


def make_camera_bag(source: str | Path, out: str | Path, *, compressed: bool = False, rate: float | None = None,
                    every: int = 1, start_frame: int = 0, max_frames: int | None = None,
                    resize: tuple[int, int] | None = None, frame_id: str = DEFAULT_FRAME_ID,
                    topic: str = DEFAULT_TOPIC, intrinsics: str | Path | None = None, jpeg_quality: int = 90,
                    start_time: float | None = None, storage: str = "mcap", progress: bool = True,
                    force: bool = False) -> BagSummary:
    """Write the frames of `source` (a video file, an image folder in natural order, or one image) to the rosbag2
    folder `out`.

    Raw frames go on `topic` as sensor_msgs/Image rgb8; `compressed` writes sensor_msgs/CompressedImage "jpeg" on
    `topic`/compressed instead (JPEG files of a folder are copied byte for byte unless resized). CameraInfo goes on
    `<namespace of topic>/camera_info` only when `intrinsics` is given: a guessed calibration in a bag would look
    measured. `rate` defaults to the video's fps / every, or 10 Hz for images; `start_time` (s since the epoch) to
    now. `force` replaces an existing bag at `out`. Raises MakeBagError."""
    source, out = Path(source), Path(out)
    _check_options(source, rate=rate, every=every, start_frame=start_frame, max_frames=max_frames, resize=resize,
                   topic=topic, jpeg_quality=jpeg_quality, start_time=start_time, storage=storage)
    camera = _read_camera(intrinsics) if intrinsics is not None else None
    frames, total, rate = _open_source(source, compressed=compressed, rate=rate, every=every,
                                       start_frame=start_frame, max_frames=max_frames, resize=resize,
                                       jpeg_quality=jpeg_quality)
    _clear_output(out, force)
    start_ns = _to_ns(start_time) if start_time is not None else time.time_ns()
    try:
        summary = _write(frames, total, out, compressed=compressed, rate=rate, camera=camera, frame_id=frame_id,
                         topic=topic, start_ns=start_ns, storage=storage, progress=progress,
                         custom={"source": source.name, "every": str(every), "start_frame": str(start_frame)})
    except BaseException:
        # A half-written bag would make the next run need --force and could be mistaken for a good one.
        shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        frames.close()
    return summary


def _to_ns(seconds: float) -> int:
    """Seconds since the epoch -> integer nanoseconds. Whole seconds and the fraction separately: a double near 1.7e18
    (ns) is only exact to 256 ns, so `round(seconds * 1e9)` would move 1700000000.25 off its quarter second."""
    whole = math.floor(seconds)
    return whole * 10**9 + round((seconds - whole) * 1e9)


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise MakeBagError(f"size must be WIDTHxHEIGHT with both >= 1, e.g. 640x360; got {text!r}")
    return int(m[1]), int(m[2])


# --- checks --------------------------------------------------------------------------------------------------------


def _check_options(source: Path, *, rate: float | None, every: int, start_frame: int,
                   max_frames: int | None, resize: tuple[int, int] | None, topic: str, jpeg_quality: int,
                   start_time: float | None, storage: str) -> None:
    if not source.exists():
        raise MakeBagError(f"source {source} does not exist")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise MakeBagError(f"rate must be > 0 Hz, got {rate}")
    if every < 1 or start_frame < 0 or (max_frames is not None and max_frames < 1):
        raise MakeBagError(f"need every >= 1, start_frame >= 0, max_frames >= 1; got {every}, {start_frame}, "
                           f"{max_frames}")
    if resize is not None and (len(resize) != 2 or min(resize) < 1):
        raise MakeBagError(f"resize must be (width, height) >= 1, got {resize}")
    if not _TOPIC_RE.match(topic):
        raise MakeBagError(f"topic {topic!r} is not an absolute ROS topic name (e.g. {DEFAULT_TOPIC})")
    if not 1 <= jpeg_quality <= 100:
        raise MakeBagError(f"JPEG quality must be 1-100, got {jpeg_quality}")
    # builtin_interfaces/Time holds seconds in an int32.
    if start_time is not None and not 0 <= start_time < 2**31 - 3600:
        raise MakeBagError(f"start time must be seconds since 1970 (0 to 2^31), got {start_time}")
    if storage not in STORAGES:
        raise MakeBagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")


def _clear_output(out: Path, force: bool) -> None:
    """Refuse an existing `out`, or with `force` remove it, but only when it is a bag (or empty): --force must not
    delete a folder of someone's work that was named by mistake."""
    if not out.exists() and not out.is_symlink():
        out.parent.mkdir(parents=True, exist_ok=True)
        return
    if not force:
        raise MakeBagError(f"output {out} exists (use --force to replace it)")
    if out.is_dir() and not out.is_symlink():
        contents = list(out.iterdir())
        if contents and not (out / "metadata.yaml").is_file() and not all(
                p.is_file() and p.suffix in (".mcap", ".db3", ".yaml") for p in contents):
            raise MakeBagError(f"output {out} exists and is not a rosbag2 folder; not removing it")
        shutil.rmtree(out)
    else:
        raise MakeBagError(f"output {out} exists and is not a folder; not removing it")


def _read_camera(path: str | Path) -> _Camera:
    """An intrinsics JSON as hydranet_ros/samples/udacity_camera_intrinsics.json: K (or fx, fy, cx, cy),
    image_size_wh (optional: without it K is taken to be for the source's frame size), dist_k1k2p1p2k3 (optional:
    plumb_bob; zeros without it)."""
    path = Path(path)
    try:
        cam = sources.read_intrinsics_json(path)
    except sources.FrameSourceError as exc:
        raise MakeBagError(f"bad intrinsics file: {exc}") from exc
    dist = json.loads(path.read_text()).get("dist_k1k2p1p2k3", [0.0] * 5)
    if not (isinstance(dist, list) and len(dist) == 5 and all(isinstance(v, (int, float)) for v in dist)):
        raise MakeBagError(f"bad intrinsics file: {path}: dist_k1k2p1p2k3 must be 5 numbers (k1 k2 p1 p2 k3)")
    return _Camera((cam.fx, cam.fy, cam.cx, cam.cy), cam.size, [float(v) for v in dist])


# --- sources -------------------------------------------------------------------------------------------------------


def _open_source(source: Path, *, compressed: bool, rate: float | None, every: int, start_frame: int,
                 max_frames: int | None, resize: tuple[int, int] | None,
                 jpeg_quality: int) -> tuple[_Frames, int | None, float]:
    """The frames as ((source width, height), frame) pairs, their expected count (None: unknown), and the rate."""
    try:
        kind = sources.frames_kind(source)
        if kind == "bag":
            raise MakeBagError(f"{source} is already a rosbag2 bag")
        if kind == "folder" or source.suffix.lower() in sources.IMAGE_SUFFIXES:
            files = sources.list_images(source) if kind == "folder" else [source]
            files = files[start_frame::every][:max_frames]
            if not files:
                raise MakeBagError(f"{source} has {len(sources.list_images(source))} images, none from "
                                   f"--start-frame {start_frame}")
            frames = _image_frames(files, compressed, resize, jpeg_quality)
            return frames, len(files), rate or FOLDER_RATE_HZ
        return _video_source(source, compressed, rate, every, start_frame, max_frames, resize, jpeg_quality)
    except sources.FrameSourceError as exc:
        raise MakeBagError(str(exc)) from exc


def _image_frames(files: list[Path], compressed: bool, resize: tuple[int, int] | None,
                  jpeg_quality: int) -> _Frames:
    import cv2

    for path in files:
        if compressed and resize is None and _is_jpeg(path):
            # The file already is what image_transport would publish: copying keeps it bit-exact and skips a
            # lossy second encoding.
            try:
                size = sources.image_size(path)
            except sources.FrameSourceError as exc:
                raise MakeBagError(str(exc)) from exc
            yield size, _Frame(None, size, path.read_bytes())
            continue
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MakeBagError(f"cannot read image {path}")
        size = (bgr.shape[1], bgr.shape[0])
        yield size, _convert(bgr, compressed, resize, jpeg_quality)


def _is_jpeg(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(3) == b"\xff\xd8\xff"


def _video_source(video: Path, compressed: bool, rate: float | None, every: int, start_frame: int,
                  max_frames: int | None, resize: tuple[int, int] | None,
                  jpeg_quality: int) -> tuple[_Frames, int | None, float]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise MakeBagError(f"cannot open video {video} (not a video, or a codec OpenCV lacks)")
    fps, count = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if rate is None:
        if not (math.isfinite(fps) and fps > 0):
            cap.release()
            raise MakeBagError(f"video {video} states no frame rate; pass --rate")
        rate = fps / every
    # The container's frame count is an estimate (it may count frames the decoder cannot return): progress only.
    total = max(0, -(-(count - start_frame) // every)) if count > 0 else max_frames
    if total is not None and max_frames is not None:
        total = min(total, max_frames)

    def frames() -> _Frames:
        try:
            # grab() without decoding: exact frame positions, where seeking (CAP_PROP_POS_FRAMES) lands on
            # keyframes with some codecs.
            for skipped in range(start_frame):
                if not cap.grab():
                    raise MakeBagError(f"video {video} has only {skipped} frames; --start-frame {start_frame}")
            for _, bgr in sources.video_frames(cap, every, max_frames):
                yield (bgr.shape[1], bgr.shape[0]), _convert(bgr, compressed, resize, jpeg_quality)
        finally:
            cap.release()

    return frames(), total, rate


def _convert(bgr: np.ndarray, compressed: bool, resize: tuple[int, int] | None, jpeg_quality: int) -> _Frame:
    import cv2

    if resize is not None and (bgr.shape[1], bgr.shape[0]) != tuple(resize):
        shrink = resize[0] * resize[1] < bgr.shape[0] * bgr.shape[1]
        bgr = cv2.resize(bgr, resize, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    size = (bgr.shape[1], bgr.shape[0])
    if not compressed:
        return _Frame(bgr, size)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise MakeBagError("JPEG encoding failed")
    return _Frame(None, size, buf.tobytes())


# --- writing -------------------------------------------------------------------------------------------------------


def _write(frames: _Frames, total: int | None, out: Path, *, compressed: bool, rate: float, camera: _Camera | None,
           frame_id: str, topic: str, start_ns: int, storage: str, progress: bool,
           custom: dict[str, str]) -> BagSummary:
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    t = store.types
    image_topic, image_type = (f"{topic}/compressed", COMPRESSED_MSG) if compressed else (topic, IMAGE_MSG)
    topics = {image_topic: image_type}
    if camera is not None:
        topics[camera_info_topic(topic)] = CAMERA_INFO_MSG
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    n, stamp, first_size, infos = 0, start_ns, (0, 0), {}
    with Writer(out, version=ROSBAG2_VERSION, storage_plugin=plugin) as writer:
        for key, value in custom.items():
            writer.set_custom_data(f"hydranet_make_bag.{key}", value)
        conns = {name: writer.add_connection(name, msgtype, typestore=store, offered_qos_profiles=[CAMERA_QOS])
                 for name, msgtype in topics.items()}
        with show_progress(frames, total=total, desc=f"make-bag {out.name}", unit="frame", enabled=progress,
                           leave=False) as bar:
            for source_size, frame in bar:
                # i / rate computed afresh each frame: integer nanoseconds without accumulated rounding.
                stamp = start_ns + round(n * 1e9 / rate)
                header = _header(t, stamp, frame_id)
                if compressed:
                    assert frame.jpeg is not None
                    msg = t[COMPRESSED_MSG](header=header, format="jpeg", data=np.frombuffer(frame.jpeg, np.uint8))
                else:
                    msg = _raw_image(t, header, frame)
                writer.write(conns[image_topic], stamp, store.serialize_cdr(msg, image_type))
                if camera is not None:
                    key = (source_size, frame.size)
                    if key not in infos:
                        infos[key] = _camera_info_fields(camera, source_size, frame.size)
                    info = _camera_info(t, header, frame.size, *infos[key], camera.d)
                    writer.write(conns[camera_info_topic(topic)], stamp, store.serialize_cdr(info, CAMERA_INFO_MSG))
                first_size = first_size if n else frame.size
                n += 1
        if n == 0:
            raise MakeBagError("no frame could be read from the source")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return BagSummary(path=out, frames=n, duration_s=(stamp - start_ns) / 1e9, size_bytes=size, topics=topics,
                      rate_hz=rate, image_size=first_size, storage=storage)


def _header(t: Any, stamp_ns: int, frame_id: str) -> Any:
    time_msg = t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return t["std_msgs/msg/Header"](stamp=time_msg, frame_id=frame_id)


def _raw_image(t: Any, header: Any, frame: _Frame) -> Any:
    import cv2

    assert frame.bgr is not None
    rgb = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB)
    w, h = frame.size
    return t[IMAGE_MSG](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                        data=rgb.reshape(-1))


def _camera_info_fields(camera: _Camera, source_size: tuple[int, int],
                        size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """K and P (row-major) for frames of `size` resized from `source_size`.

    The calibrated size must have the source's aspect ratio (else it is another camera or a crop, and a scaled K
    would be silently wrong); the resize itself may change it, since its scale factors are known."""
    try:
        k_source = sources.Camera(*camera.k, camera.size).at(source_size)
    except sources.FrameSourceError as exc:
        raise MakeBagError(f"intrinsics do not fit the source: {exc}") from exc
    k_frame = Intrinsics(*k_source).scaled(size[0] / source_size[0], size[1] / source_size[1])
    fx, fy, cx, cy = k_frame.as_tuple()
    k = np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
    # Unrectified camera: P is K with a zero fourth column (as camera_calibration writes for a monocular camera
    # without a rectified-image model).
    p = np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    return k, p


def _camera_info(t: Any, header: Any, size: tuple[int, int], k: np.ndarray, p: np.ndarray, d: list[float]) -> Any:
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return t[CAMERA_INFO_MSG](header=header, height=size[1], width=size[0], distortion_model="plumb_bob",
                              d=np.array(d, dtype=np.float64), k=k, r=np.eye(3).reshape(-1), p=p,
                              binning_x=0, binning_y=0, roi=roi)


__all__ = ["CAMERA_QOS", "BagSummary", "MakeBagError", "camera_info_topic", "make_camera_bag",
           "parse_size"]
