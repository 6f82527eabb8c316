"""The node end to end, over real DDS: a camera rig process -> hydranet_node process -> this process as checker.

Every output's header, encoding, size and QoS; boxes in source pixels (and scaled with the source resolution);
two cameras in one batch; live mode under overload; replay mode in order; bad input of every kind.
The model is the default spec at 320x192 with its ImageNet backbone and untrained heads (conftest.hydranet_model):
real ONNX Runtime, arbitrary but deterministic outputs.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from conftest import IMAGE, INTRINSICS, NODE, RELIABLE, spin_until, start_rig, wait_for_publishers

BEST_EFFORT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def start_node(ros, model: Path, cameras: dict[str, dict], name: str, **params) -> object:
    """hydranet_node in its own process with `cameras` ({name: {image_topic, compressed, camera_info_topic,
    fallback_fx, frame_id}} overrides) and other parameters."""
    args = ["-p", f"model:={model}", "-p", f"camera_names:={json.dumps(list(cameras))}"]
    for cam, cfg in cameras.items():
        full = {"image_topic": f"/camera/{cam}/image_raw", "compressed": False, "camera_info_topic": "",
                "fallback_fx": 0.0, "frame_id": "", **cfg}
        for key, value in full.items():
            args += ["-p", f"cameras.{cam}.{key}:={json.dumps(value)}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={json.dumps(value)}"]
    return ros.start(NODE + ["--ros-args", *args], name=name)


class Collector:
    """Subscribes to topics in the test process and keeps what arrives."""

    def __init__(self, node) -> None:
        self.node = node
        self.got: dict[str, list] = defaultdict(list)

    def listen(self, topic: str, msg_type, qos=RELIABLE) -> None:
        self.node.create_subscription(msg_type, topic, self.got[topic].append, qos)

    def wait(self, topics: list[str], count: int = 1, timeout: float = 40.0) -> None:
        spin_until(self.node, lambda: all(len(self.got[t]) >= count for t in topics), timeout,
                   f"{count} message(s) on each of {topics}; got " + str({t: len(self.got[t]) for t in topics}))

    def camera_status(self, camera: str) -> list[DiagnosticStatus]:
        return [s for a in self.got["/diagnostics"] for s in a.status if s.name == f"hydranet: camera {camera}"]


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_every_output_with_the_input_header_encoding_size_and_qos(ros, rclpy_node, hydranet_model):
    c = Collector(rclpy_node)
    base = "/hydranet/front"
    topics = {f"{base}/drivable_area": Image, f"{base}/lane_lines": Image, f"{base}/depth": Image,
              f"{base}/depth/camera_info": CameraInfo, f"{base}/detections": Detection2DArray,
              f"{base}/overlay": Image, f"{base}/points": PointCloud2, f"{base}/detections_3d": Detection3DArray,
              f"{base}/markers": MarkerArray, "/camera/front/image_raw": Image}
    for topic, msg_type in topics.items():
        # A best-effort subscriber must receive what the node publishes reliably, and a reliable one too.
        c.listen(topic, msg_type, BEST_EFFORT if topic.endswith(("overlay", "image_raw")) else RELIABLE)
    c.listen("/diagnostics", DiagnosticArray)
    node = start_node(ros, hydranet_model, {"front": {"camera_info_topic": "/camera/front/camera_info"}},
                      "node_outputs", score_threshold=0.0)
    wait_for_publishers(rclpy_node, f"{base}/drivable_area", timeout=30)
    t_start = time.time_ns()
    rig = start_rig(ros, "rig_outputs", rate=5, count=0, wait_for=["/camera/front/image_raw"], streams=[{
        "topic": "/camera/front/image_raw", "image": IMAGE, "qos": "best_effort",  # a best-effort camera
        "info_topic": "/camera/front/camera_info", "intrinsics": INTRINSICS, "frame_id": "camera_front_optical"}])
    c.wait(list(topics), count=2)
    # LabelInfo is transient local: a subscriber that joins late still gets it.
    for task in ("drivable_area", "lane_lines", "detections"):
        c.listen(f"{base}/{task}/label_info", LabelInfo, LATCHED)
    c.wait([f"{base}/{t}/label_info" for t in ("drivable_area", "lane_lines", "detections")])
    # In steady state the camera's status is OK, with every stage timed; it says where focal lengths come from.
    spin_until(rclpy_node, lambda: any(s.level == DiagnosticStatus.OK for s in c.camera_status("front")), 15.0,
               "an OK status: " + str([(s.message, values(s)) for s in c.camera_status("front")[-2:]]))
    v = values([s for s in c.camera_status("front") if s.level == DiagnosticStatus.OK][-1])
    assert v["focal_length_from"] == "camera_info" and int(v["published_total"]) > 0
    for stage in ("decode", "preprocess", "infer", "postprocess", "publish"):
        assert float(v[f"latency_{stage}_ms"]) > 0, stage
    rig.stop()
    t_end = time.time_ns()

    # Every output carries a camera frame's header: its frame_id, and a stamp the rig gave (wall time of this
    # run; not the node's publish time: results are stamped later than the frame, never with a fresh stamp).
    for topic in topics:
        for msg in c.got[topic]:
            header = msg.markers[-1].header if isinstance(msg, MarkerArray) else msg.header
            assert header.frame_id == "camera_front_optical", topic
            assert t_start <= stamp_ns(msg.markers[-1] if isinstance(msg, MarkerArray) else msg) <= t_end, topic
    sent = {stamp_ns(m) for m in c.got["/camera/front/image_raw"]}
    result_stamps = {stamp_ns(m) for m in c.got[f"{base}/detections"]}
    assert len(result_stamps & sent) >= 1, (sorted(result_stamps), sorted(sent))

    # Dense outputs at the network's view of the 1280x720 image (320x180 for a 320x192 model), CameraInfo to match.
    for task in ("drivable_area", "lane_lines"):
        m = c.got[f"{base}/{task}"][-1]
        assert (m.encoding, m.width, m.height, m.step) == ("mono8", 320, 180, 320)
        assert set(np.unique(np.frombuffer(m.data, np.uint8))) <= {0, 1}
    d = c.got[f"{base}/depth"][-1]
    assert (d.encoding, d.width, d.height, d.step) == ("32FC1", 320, 180, 320 * 4)
    depth = np.frombuffer(d.data, np.float32)
    finite = depth[np.isfinite(depth)]
    assert finite.size > 0.5 * depth.size and (finite > 0).all()
    info = c.got[f"{base}/depth/camera_info"][-1]
    k_src = json.loads(Path(INTRINSICS).read_text())["K"]
    assert (info.width, info.height) == (320, 180)
    assert info.k[0] == pytest.approx(k_src[0][0] / 4, rel=1e-3)
    assert info.k[2] == pytest.approx((k_src[0][2] + 0.5) / 4 - 0.5, rel=1e-3)
    assert info.k[4] == pytest.approx(k_src[1][1] / 4, rel=1e-3) and info.p[0] == pytest.approx(info.k[0])
    assert info.distortion_model == "plumb_bob" and len(info.d) == 5

    dets = c.got[f"{base}/detections"][-1].detections
    assert 90 <= len(dets) <= 100  # threshold 0: the top-K rows, less boxes that lie wholly in the padding
    for det in dets:
        b = det.bbox
        assert b.center.position.x - b.size_x / 2 >= -1e-3 and b.center.position.x + b.size_x / 2 <= 1280 + 1e-3
        assert b.center.position.y - b.size_y / 2 >= -1e-3 and b.center.position.y + b.size_y / 2 <= 720 + 1e-3
        assert det.results[0].hypothesis.class_id in {"vehicle", "pedestrian", "cyclist"}
        assert 0 <= det.results[0].hypothesis.score <= 1
    labels = c.got[f"{base}/detections/label_info"][0]
    assert [v.class_name for v in labels.class_map] == ["vehicle", "pedestrian", "cyclist"]
    assert [v.class_id for v in labels.class_map] == [0, 1, 2]

    overlay = c.got[f"{base}/overlay"][-1]
    assert (overlay.encoding, overlay.width, overlay.height) == ("rgb8", 1280, 720)
    cloud = c.got[f"{base}/points"][-1]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"] and cloud.point_step == 16
    xyz = np.frombuffer(cloud.data, np.float32).reshape(-1, 4)[:, :3]
    assert cloud.width == len(xyz) > 1000 and (xyz[:, 2] > 0).all()
    assert c.got[f"{base}/detections_3d"][-1].detections, "boxes with a distance are located in 3D"
    assert len(c.got[f"{base}/markers"][-1].markers) >= 3  # DELETEALL + a cube and a label per object

    # QoS as documented: reliable + volatile results, transient-local labels.
    for topic in (f"{base}/drivable_area", f"{base}/depth", f"{base}/detections", f"{base}/points"):
        (pub,) = rclpy_node.get_publishers_info_by_topic(topic)
        assert pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
        assert pub.qos_profile.durability == DurabilityPolicy.VOLATILE, topic
    (label_pub,) = rclpy_node.get_publishers_info_by_topic(f"{base}/detections/label_info")
    assert label_pub.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    (sub,) = [s for s in rclpy_node.get_subscriptions_info_by_topic("/camera/front/image_raw")
              if s.node_name == "hydranet"]
    assert sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT  # (history depth is not in the graph)

    assert node.stop() == 0, node.output()


def _box_array(msg: Detection2DArray) -> np.ndarray:
    return np.array([[d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y,
                      d.results[0].hypothesis.score] for d in msg.detections])


def test_two_cameras_in_one_batch_and_boxes_scale_with_the_source_resolution(ros, rclpy_node, hydranet_model):
    """One camera sends a 640x360 frame, the other the same frame 2x nearest-neighbour upscaled (1280x720): the
    network sees identical pixels, so the second camera's boxes must be exactly twice the first's."""
    c = Collector(rclpy_node)
    for cam in ("small", "large"):
        c.listen(f"/hydranet/{cam}/detections", Detection2DArray)
        c.listen(f"/hydranet/{cam}/drivable_area", Image)
    c.listen("/diagnostics", DiagnosticArray)
    node = start_node(ros, hydranet_model, {"small": {}, "large": {}}, "node_two", score_threshold=0.0,
                      fp16=False)
    wait_for_publishers(rclpy_node, "/hydranet/large/detections", timeout=30)
    start_rig(ros, "rig_two", rate=2, count=0, wait_for=["/camera/small/image_raw", "/camera/large/image_raw"],
              streams=[{"topic": "/camera/small/image_raw", "image": IMAGE, "size": [640, 360], "frame_id": "s"},
                       {"topic": "/camera/large/image_raw", "image": IMAGE, "size": [640, 360], "upscale": 2,
                        "frame_id": "l"}])
    c.wait(["/hydranet/small/detections", "/hydranet/large/detections"], count=4)

    by_stamp = {stamp_ns(m): m for m in c.got["/hydranet/small/detections"]}
    pairs = [(by_stamp[stamp_ns(m)], m) for m in c.got["/hydranet/large/detections"] if stamp_ns(m) in by_stamp]
    assert pairs, "both cameras answered frames of the same tick"
    for small, large in pairs:
        assert small.header.frame_id == "s" and large.header.frame_id == "l"
        a, b = _box_array(small), _box_array(large)
        assert len(a) == len(b) >= 90
        np.testing.assert_allclose(b[:, :4], 2 * a[:, :4], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(b[:, 4], a[:, 4], atol=1e-6)
    small_mask = c.got["/hydranet/small/drivable_area"][-1]
    large_mask = c.got["/hydranet/large/drivable_area"][-1]
    assert (small_mask.width, small_mask.height) == (large_mask.width, large_mask.height) == (320, 180)
    spin_until(rclpy_node, lambda: any(
        s.name == "hydranet: engine" and values(s)["max_batch_size"] == "2" for a in c.got["/diagnostics"]
        for s in a.status), 15.0, "a pass with both cameras in one batch")
    assert node.stop() == 0, node.output()


def test_live_mode_under_overload_drops_frames_and_keeps_latency_bounded(ros, rclpy_node, hydranet_model):
    """A 1280x720 camera at 40 Hz into a node that manages ~15 passes/s here: frames are superseded (counted),
    nothing queues, and the published results stay fresh from the first second to the last."""
    c = Collector(rclpy_node)
    c.listen("/hydranet/front/detections", Detection2DArray)
    c.listen("/diagnostics", DiagnosticArray)
    node = start_node(ros, hydranet_model, {"front": {}}, "node_live", threads=1, max_age_ms=1000)
    wait_for_publishers(rclpy_node, "/hydranet/front/detections", timeout=30)
    received_at: list[tuple[int, float]] = []
    rclpy_node.create_subscription(Detection2DArray, "/hydranet/front/detections",
                                   lambda m: received_at.append((stamp_ns(m), time.time())), RELIABLE)
    rig = start_rig(ros, "rig_live", rate=40, count=0, wait_for=["/camera/front/image_raw"],
                    streams=[{"topic": "/camera/front/image_raw", "image": IMAGE, "qos": "best_effort"}])
    spin_until(rclpy_node, lambda: len(received_at) >= 40, 60.0, "40 results")
    rig.stop()
    latency_ms = np.array([(t * 1e9 - s) / 1e6 for s, t in received_at])
    early, late = np.median(latency_ms[5:20]), np.median(latency_ms[-15:])
    assert late < early + 150, f"latency grows: {early:.0f} ms early, {late:.0f} ms late: a queue builds up"
    assert np.percentile(latency_ms[5:], 95) < 1000, latency_ms
    busy = [int(values(s)["dropped_busy_total"]) for s in c.camera_status("front")]
    received = [int(values(s)["received_total"]) for s in c.camera_status("front")]
    published = [int(values(s)["published_total"]) for s in c.camera_status("front")]
    assert busy and busy[-1] > 0 and published[-1] < received[-1]
    assert received[-1] - published[-1] >= busy[-1]  # every frame not published is accounted for
    engine = [values(s) for a in c.got["/diagnostics"] for s in a.status if s.name == "hydranet: engine"]
    assert all(int(e["queued_frames"]) <= 1 for e in engine)
    assert node.stop() == 0, node.output()


def test_replay_mode_processes_every_frame_in_order(ros, rclpy_node, hydranet_model):
    """Reliable, keep-all input, sim time from /clock: 60 frames sent faster than the node can process them all
    come out complete and in order."""
    c = Collector(rclpy_node)
    keep_all = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
    c.listen("/hydranet/front/drivable_area", Image, keep_all)
    c.listen("/hydranet/front/detections", Detection2DArray, keep_all)
    node = start_node(ros, hydranet_model, {"front": {}}, "node_replay", mode="replay", use_sim_time=True)
    wait_for_publishers(rclpy_node, "/hydranet/front/detections", timeout=30)
    count = 60
    start_rig(ros, "rig_replay", rate=30, count=count, clock=True, wait_for=["/camera/front/image_raw"],
              streams=[{"topic": "/camera/front/image_raw", "image": IMAGE, "size": [640, 360],
                        "qos": "reliable"}])
    c.wait(["/hydranet/front/drivable_area", "/hydranet/front/detections"], count=count, timeout=90)
    expected = [int(1000e9 + i * 1e9 / 30) for i in range(count)]
    for topic in ("/hydranet/front/drivable_area", "/hydranet/front/detections"):
        assert [stamp_ns(m) for m in c.got[topic]] == expected, topic
    assert node.stop() == 0, node.output()


BAD_RAW = ["unknown_encoding", "step_mismatch", "truncated", "empty", "zero_size", "huge"]
BAD_JPEG = ["corrupt_jpeg", "truncated_jpeg"]


def test_bad_input_is_counted_and_logged_and_the_other_cameras_keep_going(ros, rclpy_node, hydranet_model):
    """Six cameras in one node: good rgb8, bgr8 and jpeg ones beside a raw camera sending every kind of broken
    Image, a compressed one sending broken JPEGs, and one whose CameraInfo holds NaN."""
    c = Collector(rclpy_node)
    good = ("good", "bgr", "jpg_ok")
    for cam in (*good, "nan_info"):
        c.listen(f"/hydranet/{cam}/detections", Detection2DArray)
    c.listen("/hydranet/jpg_ok/drivable_area", Image)
    c.listen("/diagnostics", DiagnosticArray)
    node = start_node(ros, hydranet_model, {
        "good": {}, "bgr": {}, "jpg_ok": {"compressed": True}, "raw": {}, "jpeg": {"compressed": True},
        "nan_info": {"camera_info_topic": "/camera/nan_info/camera_info"}}, "node_bad")
    wait_for_publishers(rclpy_node, "/hydranet/good/detections", timeout=30)
    rate = 5
    start_rig(ros, "rig_bad", rate=rate, count=0,
              wait_for=[f"/camera/{c}/image_raw" for c in (*good, "raw", "jpeg", "nan_info")], streams=[
                  {"topic": "/camera/good/image_raw", "image": IMAGE, "size": [640, 360]},
                  {"topic": "/camera/bgr/image_raw", "image": IMAGE, "size": [640, 360], "encoding": "bgr8"},
                  {"topic": "/camera/jpg_ok/image_raw", "image": IMAGE, "size": [640, 360], "encoding": "jpeg"},
                  {"topic": "/camera/raw/image_raw", "image": IMAGE, "size": [640, 360], "bad": BAD_RAW},
                  {"topic": "/camera/jpeg/image_raw", "image": IMAGE, "size": [640, 360], "bad": BAD_JPEG},
                  {"topic": "/camera/nan_info/image_raw", "image": IMAGE, "size": [640, 360],
                   "info_topic": "/camera/nan_info/camera_info", "intrinsics": INTRINSICS, "bad_info": True}])
    c.wait([f"/hydranet/{cam}/detections" for cam in good], count=3 * rate)
    assert node.alive(), node.output()
    jpg_mask = c.got["/hydranet/jpg_ok/drivable_area"][-1]
    assert (jpg_mask.width, jpg_mask.height) == (320, 180)

    def malformed(cam: str) -> int:
        st = c.camera_status(cam)
        return int(values(st[-1])["dropped_malformed_total"]) if st else 0

    spin_until(rclpy_node, lambda: malformed("raw") >= len(BAD_RAW) and malformed("jpeg") >= len(BAD_JPEG), 20.0,
               "every bad raw and compressed frame counted as malformed")
    raw, jpeg = c.camera_status("raw")[-1], c.camera_status("jpeg")[-1]
    assert raw.level == DiagnosticStatus.WARN and "malformed" in raw.message
    assert jpeg.level == DiagnosticStatus.WARN and "malformed" in jpeg.message
    assert int(values(raw)["published_total"]) == 0 == int(values(jpeg)["published_total"])
    # NaN intrinsics: the frames are still processed (depth falls back), the camera_info is counted and ignored.
    assert c.got["/hydranet/nan_info/detections"]
    nan_status = c.camera_status("nan_info")[-1]
    assert int(values(nan_status)["dropped_malformed_total"]) > 0
    assert values(nan_status)["focal_length_from"] == "canonical"
    assert nan_status.level == DiagnosticStatus.WARN
    assert "camera nan_info: no camera_info yet and fallback_fx is 0" in node.output()
    for cam in good:
        st = c.camera_status(cam)[-1]
        assert int(values(st)["published_total"]) > 0 and int(values(st)["dropped_malformed_total"]) == 0, cam

    log = node.output()
    for reason in ("unsupported encoding", "rgb42", "step", "JPEG"):
        assert reason.lower() in log.lower(), f"no log line naming {reason!r}:\n{log}"
    # Throttled: a camera sending garbage at 6 Hz for several seconds logs each kind of problem about once.
    assert log.count("dropped a frame from /camera/raw/image_raw") <= 2 * len(BAD_RAW), log
    assert node.stop() == 0, node.output()
