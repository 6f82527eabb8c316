"""The node end to end, over real DDS: a camera rig process -> hydranet_node process -> this process as checker.

Every output's header, encoding, size and QoS; boxes in source pixels (and scaled with the source resolution);
two cameras in one batch; live mode under overload; replay mode in order; bad input of every kind.
The model is the default spec at 320x192 with its ImageNet backbone and untrained heads (conftest.hydranet_model):
real ONNX Runtime, arbitrary but deterministic outputs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from conftest import (
    IMAGE,
    INTRINSICS,
    RELIABLE,
    Collector,
    spin_until,
    stamp_ns,
    start_node,
    start_rig,
    values,
    wait_for_publishers,
)

BEST_EFFORT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


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

    # Results carry the stamps of frames the camera sent. This test's own subscription to the best-effort camera
    # loses frames now and then (large frames over UDP), so wait for a result whose frame it also received.
    def shared_stamps() -> set[int]:
        return ({stamp_ns(m) for m in c.got[f"{base}/detections"]}
                & {stamp_ns(m) for m in c.got["/camera/front/image_raw"]})

    spin_until(rclpy_node, lambda: bool(shared_stamps()), 30.0, "a result of a frame this test received too")
    rig.stop()
    t_end = time.time_ns()

    # Every output carries a camera frame's header: its frame_id, and a stamp the rig gave (wall time of this
    # run; not the node's publish time: results are stamped later than the frame, never with a fresh stamp).
    for topic in topics:
        for msg in c.got[topic]:
            header = msg.markers[-1].header if isinstance(msg, MarkerArray) else msg.header
            assert header.frame_id == "camera_front_optical", topic
            assert t_start <= stamp_ns(msg.markers[-1] if isinstance(msg, MarkerArray) else msg) <= t_end, topic

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


def test_max_batch_splits_the_cameras_frames_into_passes_of_that_size(ros, rclpy_node, hydranet_model):
    """max_batch 1 (a CPU's choice: no batch gain, memory that grows with the batch): three cameras' frames of one
    tick go through three passes of one, and every camera still gets its results, stamped as its input."""
    cams = ("a", "b", "c")
    c = Collector(rclpy_node)
    for cam in cams:
        c.listen(f"/hydranet/{cam}/detections", Detection2DArray)
    c.listen("/diagnostics", DiagnosticArray)
    node = start_node(ros, hydranet_model, {cam: {} for cam in cams}, "node_max_batch", max_batch=1,
                      max_age_ms=60_000)
    wait_for_publishers(rclpy_node, "/hydranet/c/detections", timeout=30)
    start_rig(ros, "rig_max_batch", rate=2, count=0, wait_for=[f"/camera/{cam}/image_raw" for cam in cams],
              streams=[{"topic": f"/camera/{cam}/image_raw", "image": IMAGE, "size": [640, 360], "frame_id": cam}
                       for cam in cams])
    c.wait([f"/hydranet/{cam}/detections" for cam in cams], count=3)
    stamps = [{stamp_ns(m) for m in c.got[f"/hydranet/{cam}/detections"]} for cam in cams]
    assert set.intersection(*stamps), "the cameras' frames of one tick all came out"
    spin_until(rclpy_node, lambda: c.engine() and c.engine()[-1]["max_batch_size"] != "n/a", 15.0,
               "the engine's batch sizes")
    assert {e["max_batch_size"] for e in c.engine() if e["max_batch_size"] != "n/a"} == {"1"}
    assert node.stop() == 0, node.output()


def _measure_pass_ms(ros, c: Collector, name: str, streams: list[dict]) -> float:
    """The node's own pass time for these streams (one batch of all of them), at a pace it keeps up with: a
    2 Hz rig for a few ticks, then the engine status's pass_ms (median of recent passes)."""
    passes0 = max([int(e["passes_total"]) for e in c.engine()], default=0)
    rig = start_rig(ros, name, rate=2, count=6, wait_for=[s["topic"] for s in streams], streams=streams)
    spin_until(c.node, lambda: any(int(e["passes_total"]) >= passes0 + 4 and e["pass_ms"] != "n/a"
                                   for e in c.engine()), 60.0, "passes to time")
    rig.proc.wait(30)
    return float(next(e["pass_ms"] for e in reversed(c.engine()) if e["pass_ms"] != "n/a"))


def test_live_mode_under_overload_drops_frames_and_keeps_latency_bounded(ros, rclpy_node, hydranet_model):
    """A camera at three times the rate the node can process - measured here first, so the test means the same on
    a fast and a slow machine: frames are superseded (counted), nothing queues, results stay fresh from the first
    second to the last, and every received frame is accounted for."""
    c = Collector(rclpy_node)
    c.listen("/diagnostics", DiagnosticArray)
    node = start_node(ros, hydranet_model, {"front": {}}, "node_live", threads=1, max_age_ms=60_000)
    wait_for_publishers(rclpy_node, "/hydranet/front/detections", timeout=30)
    stream = {"topic": "/camera/front/image_raw", "image": IMAGE, "size": [640, 360], "qos": "best_effort"}
    pass_ms = _measure_pass_ms(ros, c, "rig_live_measure", [stream])
    rate = min(400.0, max(10.0, 3 * 1000.0 / pass_ms))
    received_at: list[tuple[int, float]] = []
    rclpy_node.create_subscription(Detection2DArray, "/hydranet/front/detections",
                                   lambda m: received_at.append((stamp_ns(m), time.time())), RELIABLE)
    n0 = int(c.latest("front")["published_total"])
    rig = start_rig(ros, "rig_live", rate=rate, count=0, wait_for=["/camera/front/image_raw"], streams=[stream])
    spin_until(rclpy_node, lambda: len(received_at) >= 40, 60.0, "40 results")
    rig.stop()
    under_load = [float(e["pass_ms"]) for e in c.engine()[-5:] if e["pass_ms"] != "n/a"]
    pass_s = max([pass_ms, *under_load]) / 1000.0
    status = [values(s) for s in c.camera_status("front")]
    offered, served = max(float(v["input_rate_hz"]) for v in status), max(float(v["output_rate_hz"]) for v in status)
    if offered < 1.3 * served:
        pytest.skip(f"the camera rig reached {offered:.0f} Hz against {served:.0f} results/s: this machine cannot "
                    "publish fast enough to overload the node")
    latency = np.array([t - s / 1e9 for s, t in received_at])
    early, late = np.median(latency[5:20]), np.median(latency[-15:])
    # Nothing queues: a result is at most about two passes old (one waiting, one running) plus transport.
    assert late < early + 2 * pass_s + 0.1, f"latency grows: {early:.3f} s early, {late:.3f} s late (pass {pass_s:.3f})"
    assert np.percentile(latency[5:], 95) < 3 * pass_s + 1 / rate + 0.25, (latency, pass_s)
    # Once the last frames are through, every received frame is published or dropped for a counted reason.
    def settled() -> bool:
        v = c.latest("front")
        dropped = sum(int(v[f"dropped_{r}_total"]) for r in ("busy", "stale", "malformed"))
        return int(v["received_total"]) == int(v["published_total"]) + dropped and float(v["input_rate_hz"]) == 0
    spin_until(rclpy_node, settled, 15.0, "received = published + dropped: " + str(c.latest("front")))
    v = c.latest("front")
    assert int(v["dropped_busy_total"]) + int(v["dropped_overrun_total"]) > 0, v
    assert int(v["published_total"]) > n0
    assert all(int(e["queued_frames"]) <= 1 for e in c.engine())
    assert node.stop() == 0, node.output()


def test_no_result_is_older_than_max_age_with_eight_cameras(ros, rclpy_node, hydranet_model):
    """8 cameras of 1280x720 offered at 30 Hz into one live node: whatever the load, a result goes out within
    max_age_ms of its frame's arrival or not at all. max_age_ms is set from the pass time of 8 frames measured
    here (2.5 passes), so that results do go out on any machine."""
    cams = [f"cam{i}" for i in range(8)]
    c = Collector(rclpy_node)
    c.listen("/diagnostics", DiagnosticArray)
    for cam in cams:
        c.listen(f"/hydranet/{cam}/detections", Detection2DArray)
    streams = [{"topic": f"/camera/{cam}/image_raw", "image": IMAGE, "qos": "default", "frame_id": cam}
               for cam in cams]
    node = start_node(ros, hydranet_model, {cam: {} for cam in cams}, "node_eight", max_age_ms=60_000)
    wait_for_publishers(rclpy_node, "/hydranet/cam7/detections", timeout=30)
    pass_ms = _measure_pass_ms(ros, c, "rig_eight_measure", streams)
    max_age_ms = int(2.5 * pass_ms) + 50
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = rclpy_node.create_client(SetParameters, "/hydranet/set_parameters")
    spin_until(rclpy_node, client.service_is_ready, 15.0, "the parameter service")
    future = client.call_async(SetParameters.Request(parameters=[ParameterMsg(name="max_age_ms", value=ParameterValue(
        type=ParameterType.PARAMETER_INTEGER, integer_value=max_age_ms))]))
    spin_until(rclpy_node, future.done, 15.0, "max_age_ms set")
    assert future.result().results[0].successful
    # The diagnostics period running when max_age_ms changed also holds the measuring passes' ages, published
    # under the old bound: judge only the reports after the next period boundary.
    n_diag = len(c.got["/diagnostics"])
    spin_until(rclpy_node, lambda: len(c.got["/diagnostics"]) > n_diag, 15.0, "a diagnostics period boundary")
    first_report = len(c.got["/diagnostics"])
    t_load = time.monotonic()
    received_at: dict[str, list[tuple[int, float]]] = {cam: [] for cam in cams}
    for cam in cams:
        rclpy_node.create_subscription(Detection2DArray, f"/hydranet/{cam}/detections",
                                       lambda m, cam=cam: received_at[cam].append((stamp_ns(m), time.time())),
                                       RELIABLE)
    rig = start_rig(ros, "rig_eight", rate=30, count=0, wait_for=[s["topic"] for s in streams], streams=streams)
    spin_until(rclpy_node, lambda: time.monotonic() - t_load > 12 and all(len(r) >= 6 for r in received_at.values()),
               90.0, "6 results from every camera under load")
    rig.stop()
    spin_until(rclpy_node, lambda: all(float(c.latest(cam)["input_rate_hz"]) == 0 for cam in cams), 15.0,
               "the load to end")
    reports = [s for a in c.got["/diagnostics"][first_report:] for s in a.status
               if s.name in {f"hydranet: camera {cam}" for cam in cams}]
    under_load = [values(s) for s in reports if values(s)["age_at_publish_ms_max"] != "n/a"]
    ages = [float(v["age_at_publish_ms_max"]) for v in under_load]
    p95 = [float(v["age_at_publish_ms_p95"]) for v in under_load]
    offered = sum(max(float(values(s)["input_rate_hz"]) for s in c.camera_status(cam)) for cam in cams)
    stale = sum(int(c.latest(cam)["dropped_stale_total"]) for cam in cams)
    print(f"8 cameras: max_age_ms {max_age_ms} (pass of 8: {pass_ms:.0f} ms), offered up to {offered:.0f} frames/s, "
          f"age at publish p95 up to {max(p95):.0f} ms, max {max(ages):.0f} ms, {stale} stale drops")
    assert max(ages) <= max_age_ms, (max_age_ms, ages)
    # What the subscriber sees: the node's bound, plus the camera-to-node transport (as the node measured it: the
    # stamp's age at publication beyond the age from reception, worst period) and the delivery to this process,
    # allowed one pass of 8 frames. Both measured here: a loaded or slower machine gets the allowance it needs.
    transport_ms = max(0.0, *(float(v["stamp_age_at_publish_ms_max"]) - float(v["age_at_publish_ms_max"])
                              for v in under_load if v.get("stamp_age_at_publish_ms_max", "n/a") != "n/a"))
    bound_ms = max_age_ms + transport_ms + pass_ms
    for cam, got in received_at.items():
        # The node's own bound above holds for every result. This subscriber-side check is about the typical
        # result: its tail is this test process's, which shares two saturated cores with the node and a rig of
        # eight 1280x720 streams (fresh-clone CI runs saw p95 742 ms against a 703 ms bound with a median far
        # below; and 809 ms for a camera's first result, the load's cold start, which is left out).
        latency_ms = [(t - s / 1e9) * 1000 for s, t in got[1:] if t > 0]
        assert np.median(latency_ms) <= bound_ms, (cam, bound_ms, transport_ms, latency_ms)
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
        "nan_info": {"camera_info_topic": "/camera/nan_info/camera_info"}}, "node_bad",
        # Bad input is the subject, not falling behind: six cameras on a loaded 2-core machine miss the default
        # 200 ms, and a frame dropped as stale before decoding never shows that it was malformed.
        max_age_ms=60000)
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
    assert int(values(nan_status)["camera_info_rejected_total"]) > 0  # not a frame: frames are accounted apart
    assert int(values(nan_status)["dropped_malformed_total"]) == 0
    assert "fx=nan" in values(nan_status)["last_camera_info_error"]
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
