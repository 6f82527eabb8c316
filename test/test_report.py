"""The visual report (hydranet_ros/ros/report.py, `hydranet visualize`) on a bag of real node outputs.

The bag is made without ROS processes but from the node's real parts: the trained default model runs on the
sample frames (load_engine, make_batch, split_batch as hydranet_node calls them), the node's own converters
(outputs.py, convert.py) make the messages, rclpy serialises them, and rosbags writes them to MCAP. /diagnostics
comes from the node's CameraMonitor, fed with the stage times measured while doing so.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import INTRINSICS, REPO, SAMPLES

FRAMES = [SAMPLES / "project_video_0750.jpg", SAMPLES / "project_video_1050.jpg"] * 3  # 6 frames, 10 Hz
NO_DEPTH_AT = 3  # this frame's depth (and its camera_info) is left out of the bag
T0_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
LAG_NS = 150_000_000  # outputs are logged after the next camera frame, as a busy node's would be
VISION_TYPES = ["vision_msgs/msg/Detection2DArray", "vision_msgs/msg/Detection3DArray", "vision_msgs/msg/LabelInfo"]


@dataclass
class Drive:
    """Messages of a drive: (log time ns, topic, msgtype, rclpy message), and what went into /diagnostics."""

    records: list[tuple[int, str, str, Any]] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)
    diagnostics: list[Any] = field(default_factory=list)  # the DiagnosticArray messages written

    def add(self, t: int, topic: str, msg: Any) -> None:
        ns = type(msg).__module__.split(".")[0]  # sensor_msgs.msg._image -> sensor_msgs
        self.records.append((t, topic, f"{ns}/msg/{type(msg).__name__}", msg))


def make_drive(images: list[Path], no_depth_at: int | None = NO_DEPTH_AT, camera: str = "front") -> Drive:
    """Run the default model on `images` as hydranet_node does, and record what it would publish."""
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from std_msgs.msg import Header

    from hydranet_ros.core.contract import default_model_path
    from hydranet_ros.core.geometry import Intrinsics
    from hydranet_ros.core.images import decode_raw
    from hydranet_ros.ros import outputs as out
    from hydranet_ros.ros.convert import camera_info_from_json, numpy_to_image
    from hydranet_ros.ros.monitor import CameraMonitor
    from hydranet_ros.runtime.engines import load_engine
    from hydranet_ros.runtime.overlay import render_overlay
    from hydranet_ros.runtime.postprocess import split_batch
    from hydranet_ros.runtime.preprocess import make_batch

    levels = {0: DiagnosticStatus.OK, 1: DiagnosticStatus.WARN, 2: DiagnosticStatus.ERROR}
    engine = load_engine(default_model_path(), providers=["cpu"])
    c = engine.contract
    base, frame_id = f"/hydranet/{camera}", f"camera_{camera}_optical"
    monitor = CameraMonitor(camera, f"/camera/{camera}/image_raw")
    drive = Drive()
    passes = 0

    def diagnostics(t: int) -> None:
        level, message, values = monitor.report(200.0)
        st = DiagnosticStatus(level=levels[level], name=f"hydranet: camera {camera}", hardware_id=camera,
                              message=message, values=[KeyValue(key=k, value=v) for k, v in values])
        eng = DiagnosticStatus(level=DiagnosticStatus.OK, name="hydranet: engine", hardware_id="hydranet",
                               message=engine.description, values=[
                                   KeyValue(key="mode", value="replay"),
                                   KeyValue(key="model", value=f"{c.name} {c.path.name}"),
                                   KeyValue(key="model_sha256", value=c.sha256),
                                   KeyValue(key="engine", value=engine.description),
                                   KeyValue(key="passes_total", value=str(passes)),
                                   KeyValue(key="mean_batch_size", value="1.00" if passes else "n/a")])
        array = DiagnosticArray(header=Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9)), status=[eng, st])
        drive.diagnostics.append(array)
        drive.add(t, "/diagnostics", array)

    for task in c.tasks:
        if task.classes:
            drive.add(T0_NS - 10**9, f"{base}/{task.name}/label_info",
                      out.label_info(Header(frame_id=frame_id), task.classes, 0.35))
    diagnostics(T0_NS - 5 * 10**8)  # a period before the first frame: every latency "n/a"
    try:
        for i, path in enumerate(images):
            t = T0_NS + i * PERIOD_NS
            header = Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id=frame_id)
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            image = numpy_to_image(rgb, "rgb8", header)
            info = camera_info_from_json(Path(INTRINSICS), rgb.shape[1], rgb.shape[0], header)
            drive.add(t, f"/camera/{camera}/image_raw", image)
            drive.add(t, f"/camera/{camera}/camera_info", info)
            drive.stamps.append(t)
            received = time.monotonic()
            monitor.received()
            t0 = time.monotonic()
            rgb = decode_raw(image.encoding, image.width, image.height, image.step, image.is_bigendian, image.data)
            monitor.stage("decode", (time.monotonic() - t0) * 1e3)
            t0 = time.monotonic()
            batch, boxes = make_batch([rgb], c.input_width, c.input_height)
            monitor.stage("preprocess", (time.monotonic() - t0) * 1e3)
            t0 = time.monotonic()
            outputs = engine.run(batch)
            monitor.stage("infer", (time.monotonic() - t0) * 1e3)
            passes += 1
            t0 = time.monotonic()
            k = Intrinsics(info.k[0], info.k[4], info.k[2], info.k[5])
            (r,) = split_batch(outputs, c, boxes, [k], 0.35)
            monitor.stage("postprocess", (time.monotonic() - t0) * 1e3)
            t0 = time.monotonic()
            t_out = t + LAG_NS
            for name, mask in r.masks.items():
                drive.add(t_out, f"{base}/{name}", numpy_to_image(mask, "mono8", header))
            if i != no_depth_at:
                drive.add(t_out, f"{base}/depth", numpy_to_image(r.depth, "32FC1", header))
                drive.add(t_out, f"{base}/depth/camera_info", out.dense_camera_info(header, r, info))
            found = [d for boxes_ in r.detections.values() for d in boxes_]
            drive.add(t_out, f"{base}/detections", out.detection_array(header, found))
            drive.add(t_out, f"{base}/detections_3d", out.detections_3d(header, found, r.source_intrinsics))
            drive.add(t_out, f"{base}/markers", out.markers(header, found, r.source_intrinsics, f"hydranet/{camera}"))
            drive.add(t_out, f"{base}/overlay", numpy_to_image(render_overlay(rgb, r), "rgb8", header))
            monitor.stage("publish", (time.monotonic() - t0) * 1e3)
            monitor.published((time.monotonic() - received) * 1e3)
            if i % 3 == 2:  # two periods with frames
                diagnostics(t_out + 1)
    finally:
        engine.close()
    return drive


def write_bag(drive: Drive, path: Path, skip: tuple[str, ...] = ()) -> Path:
    """The drive as an MCAP rosbag2, leaving out topics that start with any of `skip`."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer

    from hydranet_ros.bags.rosbag import typestore

    store = typestore(VISION_TYPES)
    connections: dict[str, Any] = {}
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for t, topic, msgtype, msg in sorted(drive.records, key=lambda r: r[0]):
            if topic.startswith(skip):
                continue
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connections[topic], t, serialize_message(msg))
    return path


@pytest.fixture(scope="module")
def drive() -> Drive:
    return make_drive(FRAMES)


@pytest.fixture(scope="module")
def bag(drive: Drive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bag(drive, tmp_path_factory.mktemp("bags") / "drive")


@pytest.fixture(scope="module")
def report(bag: Path, tmp_path_factory: pytest.TempPathFactory):
    from hydranet_ros.bags.report import render_report

    return render_report(bag, tmp_path_factory.mktemp("report"), progress=False)


def _panels(row: np.ndarray) -> list[np.ndarray]:
    """One rendered frame (title strips + 4 panels) -> the 4 panels without their titles."""
    from hydranet_ros.bags.report.panels import GAP, TITLE_HEIGHT

    w = (row.shape[1] - 3 * GAP) // 4
    return [row[TITLE_HEIGHT:, k * (w + GAP): k * (w + GAP) + w] for k in range(4)]


def _sheet_rows(sheet: np.ndarray, n: int, frame_h: int) -> list[np.ndarray]:
    from hydranet_ros.bags.report.panels import GAP

    head = sheet.shape[0] - n * (frame_h + 2 * GAP)
    return [sheet[head + k * (frame_h + 2 * GAP): head + k * (frame_h + 2 * GAP) + frame_h] for k in range(n)]


def test_report_files_and_layout(report, drive: Drive):
    from hydranet_ros.bags.report.panels import GAP, PANEL_HEIGHT, TITLE_HEIGHT

    assert report.frames == len(drive.stamps) == 6
    for path in (report.video, report.sheet, report.summary_md, report.summary_json):
        assert path.is_file() and path.stat().st_size > 0, path
    assert report.video.name == "report.mp4"
    frame_w, frame_h = 4 * 640 + 3 * GAP, TITLE_HEIGHT + PANEL_HEIGHT  # 1280x720 camera -> 640x360 panels
    cap = cv2.VideoCapture(str(report.video))
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (frame_h, frame_w, 3)
        n += 1
    cap.release()
    assert n == report.frames
    assert report.fps == pytest.approx(1e9 / PERIOD_NS)
    sheet = cv2.imread(str(report.sheet))
    assert sheet.shape[1] == frame_w <= 2600
    header = sheet.shape[0] - 6 * (frame_h + 2 * GAP)  # 6 rows (the default) of 6 frames
    assert 60 <= header <= 200


def test_report_content(report, drive: Drive):
    from hydranet_ros.bags.report.panels import PANEL_HEIGHT, TITLE_HEIGHT

    sheet = cv2.cvtColor(cv2.imread(str(report.sheet)), cv2.COLOR_BGR2RGB)
    rows = _sheet_rows(sheet, 6, TITLE_HEIGHT + PANEL_HEIGHT)
    for k, row in enumerate(rows):
        camera, segments, depth, boxes = (p.astype(np.int16) for p in _panels(row))
        lower = slice(camera.shape[0] // 2, None)
        # The road is tinted: the drivable panel differs from the camera in the lower half.
        assert np.abs(segments[lower] - camera[lower]).mean() > 5, k
        assert camera.std() > 20  # a real picture, not a placeholder
        if k == NO_DEPTH_AT:
            from hydranet_ros.bags.report.panels import EMPTY_BG

            assert (depth == EMPTY_BG).all(axis=2).mean() > 0.8  # the "no output" panel
        else:
            assert depth[:, : depth.shape[1] - 80].std() > 10  # a depth map, not a constant
    with_boxes = [k for k, (_, topic, _, msg) in enumerate(r for r in drive.records if r[1].endswith("/detections"))
                  if msg.detections]
    assert with_boxes, "the sample frames show cars: the model should find some"
    for k in with_boxes:  # boxes drawn over the camera picture
        camera, _, _, boxes = (p.astype(np.int16) for p in _panels(rows[k]))
        assert np.abs(boxes - camera).max() > 100
    summary = report.summary
    assert summary["frames"] == len(drive.stamps)
    assert summary["missing"]["depth"] == 1 and summary["missing"]["detections"] == 0
    assert "1 of 6 frames lack depth" in report.text
    assert summary["topics"]["/hydranet/front/depth"]["count"] == 5
    assert summary["topics"]["/camera/front/image_raw"]["count"] == 6
    assert summary["image_topic"] == "/camera/front/image_raw" and summary["camera_panel"] == "camera"
    assert summary["engine"]["model_sha256"] and "hydranet_effl0_road.onnx" in summary["engine"]["model"]


def test_latency_table_matches_the_diagnostics_written(report, drive: Drive):
    from hydranet_ros.ros.monitor import STAGES

    periods = [{kv.key: kv.value for kv in st.values} for a in drive.diagnostics for st in a.status
               if st.hardware_id == "front"]
    busy = [p for p in periods if p["latency_infer_ms"] != "n/a"]
    assert len(periods) == 3 and len(busy) == 2
    cam = report.summary["cameras"]["front"]
    assert cam["periods_with_frames"] == 2
    for stage in STAGES:
        mean = float(np.mean([float(p[f"latency_{stage}_ms"]) for p in busy]))
        peak = max(float(p[f"latency_{stage}_ms_max"]) for p in busy)
        got = cam["latency_ms"][stage]
        assert got["mean"] == pytest.approx(mean, abs=0.006) and got["max"] == pytest.approx(peak, abs=0.006)
        assert f"| {stage} | {got['mean']:.2f} | {got['max']:.2f} |" in report.text
    age = float(np.mean([float(p["age_at_publish_ms"]) for p in busy]))
    assert cam["latency_ms"]["age_at_publish"]["mean"] == pytest.approx(age, abs=0.006)
    assert cam["totals"]["received_total"] == cam["totals"]["published_total"] == 6
    md = report.summary_md.read_text()
    assert "| infer |" in md and "/hydranet/front/detections" in md


def test_without_camera_images_the_overlay_stands_in(drive: Drive, tmp_path: Path):
    from hydranet_ros.bags.report import render_report

    bag = write_bag(drive, tmp_path / "outputs_only", skip=("/camera/",))
    report = render_report(bag, tmp_path / "out", progress=False, sheet_rows=2)
    assert report.frames == 6 and report.summary["camera_panel"] == "overlay"
    assert "no camera images" in report.text and "/hydranet/front/overlay" in report.text
    sheet = cv2.imread(str(report.sheet))
    assert sheet.shape[1] == 4 * 640 + 3 * 4


def test_two_cameras_with_the_same_stamps(drive: Drive, tmp_path: Path):
    from hydranet_ros.bags.report import render_report

    both = Drive(records=drive.records + make_drive(FRAMES[:2], no_depth_at=None, camera="rear").records)
    bag = write_bag(both, tmp_path / "two_cameras")
    rear = render_report(bag, tmp_path / "rear", camera="rear", progress=False)
    assert rear.frames == 2 and rear.summary["image_topic"] == "/camera/rear/image_raw"
    assert "cameras in this bag: /hydranet/front, /hydranet/rear" in rear.text
    assert "all 2 frames have every output" in rear.text
    front = render_report(bag, tmp_path / "front", progress=False, sheet_rows=1)
    assert front.camera == "front" and front.frames == 6 and front.summary["image_topic"] == "/camera/front/image_raw"


def test_errors_name_what_the_bag_holds(drive: Drive, tmp_path: Path, bag: Path):
    from hydranet_ros.bags.report import render_report
    from hydranet_ros.bags.rosbag import BagError

    camera_only = write_bag(drive, tmp_path / "camera_only", skip=("/hydranet/", "/diagnostics"))
    with pytest.raises(BagError, match=r"none of hydranet_node's outputs.*/camera/front/image_raw \(Image\)"):
        render_report(camera_only, tmp_path / "out", progress=False)
    with pytest.raises(BagError, match=r"no outputs of camera 'rear'.*front \(/hydranet/front\)"):
        render_report(bag, tmp_path / "out2", camera="rear", progress=False)
    with pytest.raises(BagError, match="no bag at"):
        render_report(tmp_path / "missing", tmp_path / "out3", progress=False)


def test_image_conversions_honour_step_and_encodings():
    from hydranet_ros.bags.report.index import dense_array
    from hydranet_ros.bags.rosbag import typestore
    from hydranet_ros.core.images import decode_image_msg

    store = typestore()
    Image, Header, Time = (store.types[t] for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                    "builtin_interfaces/msg/Time"))
    CompressedImage = store.types["sensor_msgs/msg/CompressedImage"]
    header = Header(stamp=Time(sec=1, nanosec=2), frame_id="cam")
    rng = np.random.default_rng(0)

    def padded(arr: np.ndarray, encoding: str, big: bool = False) -> Any:
        rows = arr.astype(arr.dtype.newbyteorder(">" if big else "<")).view(np.uint8).reshape(arr.shape[0], -1)
        data = np.zeros((arr.shape[0], rows.shape[1] + 6), np.uint8)  # 6 bytes of padding per row
        data[:, : rows.shape[1]] = rows
        return Image(header=header, height=arr.shape[0], width=arr.shape[1], encoding=encoding,
                     is_bigendian=int(big), step=data.shape[1], data=data.reshape(-1))

    ids = rng.integers(0, 3, (5, 7), dtype=np.uint8)
    assert np.array_equal(dense_array(padded(ids, "mono8")), ids)
    depth = rng.uniform(1, 80, (5, 7)).astype(np.float32)
    assert np.array_equal(dense_array(padded(depth, "32FC1", big=True)), depth)
    mm = rng.integers(0, 5000, (5, 7), dtype=np.uint16)
    metres = dense_array(padded(mm, "16UC1"))
    assert np.allclose(metres[mm > 0], mm[mm > 0] / 1000.0) and np.isinf(metres[mm == 0]).all()
    rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(decode_image_msg(padded(rgb, "rgb8")), rgb)
    assert np.array_equal(decode_image_msg(padded(rgb[:, :, ::-1], "bgr8")), rgb)
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    msg = CompressedImage(header=header, format="png", data=np.frombuffer(png.tobytes(), np.uint8))
    assert np.array_equal(decode_image_msg(msg), rgb)


@pytest.mark.parametrize(("near", "far"), [(3.0, 80.0), (1.0, 80.0), (2.5, 50.0), (10.0, 12.0)])
def test_depth_scale_bar_and_ticks(near: float, far: float):
    from hydranet_ros.bags.report.panels import DepthScale

    scale = DepthScale(near, far)
    f = np.linspace(0, 1, 50)
    assert np.allclose([scale.fraction(d) for d in scale.depth_at(f)], f)
    ticks = scale.ticks(332)
    assert ticks[0] == far and ticks[-1] == near and ticks == sorted(ticks, reverse=True)
    gaps = np.diff([scale.fraction(v) * 332 for v in ticks])
    assert len(ticks) == 2 or (gaps[:-1] >= 16).all()
    # Red at the near end, blue at the far end, black beyond range, as colourise_depth draws them.
    rgb = scale.colours(np.array([[near, far, np.inf]], np.float32))[0]
    assert rgb[0, 0] > rgb[0, 2] and rgb[1, 2] > rgb[1, 0] and (rgb[2] == 0).all()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hydranet_ros.tools.cli", "visualize", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_cli_help_and_run(bag: Path, tmp_path: Path):
    help_ = _cli("--help")
    assert help_.returncode == 0 and "--camera" in help_.stdout and "--image-topic" in help_.stdout
    done = _cli(str(bag), "--rows", "3", "--quiet")
    out = bag.parent / "drive_report"  # the default: <bag>_report beside the bag
    assert done.returncode == 0, done.stderr
    for name in ("report.mp4", "contact_sheet.png", "summary.md", "summary.json"):
        assert (out / name).is_file()
    assert f"report in {out}" in done.stdout and "| infer |" in done.stdout
    assert done.stderr == ""  # --quiet: no progress bar
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape[0] < 3 * 400 + 200  # 3 rows
    loud = _cli(str(bag), "-o", str(tmp_path / "cli"), "--rows", "1")
    assert loud.returncode == 0 and "hydranet report" in loud.stderr  # the progress bar
    assert (tmp_path / "cli" / "contact_sheet.png").is_file()


def test_cli_errors_in_one_line(tmp_path: Path):
    empty = _cli(str(tmp_path / "nothing_here"))
    assert empty.returncode == 2
    assert empty.stderr.count("\n") == 1 and "no bag at" in empty.stderr and "Traceback" not in empty.stderr
