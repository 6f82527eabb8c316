"""Post-processing, message building, the frame inbox and the diagnostics monitor: pure functions, no graph."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from hydranet_ros.core.contract import ModelContract, Task
from hydranet_ros.core.geometry import Intrinsics, Letterbox, canonical_to_metric
from hydranet_ros.ros import outputs as out
from hydranet_ros.ros.inbox import FrameInbox
from hydranet_ros.ros.monitor import ERROR, OK, WARN, CameraMonitor
from hydranet_ros.runtime.postprocess import (
    Detection,
    box_distance,
    box_position,
    depth_to_points,
    detections_to_source,
    split_batch,
)

CANONICAL_FX = 500.0


def contract() -> ModelContract:
    tasks = (Task("road", "segmentation", ("background", "road"), {}),
             Task("depth", "depth", (), {"max_depth": 80.0, "canonical_fx": CANONICAL_FX}),
             Task("boxes", "detection", ("car", "person"), {}))
    return ModelContract(path=Path("m.onnx"), sha256="0" * 64, name="t", input_width=64, input_height=48,
                         canonical_fx=CANONICAL_FX, tasks=tasks, outputs={}, spec={})


def test_depth_is_rescaled_by_the_cameras_focal_length_and_the_cap_is_beyond_range():
    canonical = np.array([[10.0, 20.0], [79.9, 5.0]], np.float32)
    d = canonical_to_metric(canonical, 2 * CANONICAL_FX, CANONICAL_FX, max_depth=80.0)
    # A twice longer focal length makes objects look twice as large: the same pixels mean twice the distance.
    np.testing.assert_allclose(d[0], [20.0, 40.0])
    assert d[1, 0] == np.inf and d[1, 1] == pytest.approx(10.0)


def test_split_batch_puts_every_result_in_its_own_cameras_geometry():
    c = contract()
    # Two cameras of different sizes in one batch: 128x72 (scale 0.5, content 64x36, pad 6 rows top and bottom)
    # and 64x48 (scale 1, no padding).
    lbs = [Letterbox.fit(128, 72, 64, 48), Letterbox.fit(64, 48, 64, 48)]
    assert (lbs[0].new_w, lbs[0].new_h, lbs[0].pad_y) == (64, 36, 6)
    seg = np.zeros((2, 48, 64), np.uint8)
    seg[0, 6:42, 32:] = 1  # right half of the first camera's content
    depth = np.full((2, 48, 64), 10.0, np.float32)
    rows = np.zeros((2, 3, 6), np.float32)
    rows[0, 0] = [16, 6, 48, 42, 0.9, 0]  # in network pixels: the whole content height, middle half
    rows[0, 1] = [0, 0, 64, 5, 0.8, 1]  # wholly inside the top padding: no pixels of the image
    rows[0, 2] = [0, 0, 10, 10, 0.1, 1]  # under the threshold
    k = [Intrinsics(200.0, 200.0, 63.5, 35.5), Intrinsics(100.0, 100.0, 31.5, 23.5)]
    outputs = {"road": seg, "depth": depth, "boxes": rows}
    r0, r1 = split_batch(outputs, c, lbs, k, score_threshold=0.5)

    assert r0.dense_size == (64, 36) and r0.masks["road"].shape == (36, 64)
    assert r0.masks["road"][:, 32:].all() and not r0.masks["road"][:, :32].any()
    assert r0.dense_intrinsics.fx == pytest.approx(100.0) and r0.dense_intrinsics.cx == pytest.approx(31.5)
    # fx at the network's scale is 100 = 0.2 x canonical: depth 10 m canonical -> 2 m for this camera.
    np.testing.assert_allclose(r0.depth, 2.0)
    (box,) = r0.detections["boxes"]
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((32.0, 0.0, 96.0, 72.0))
    assert (box.label, box.score, box.distance) == ("car", pytest.approx(0.9), pytest.approx(2.0))
    assert r1.depth.shape == (48, 64) and r1.detections["boxes"] == []

    (s0,) = split_batch(outputs | {k_: v[:1] for k_, v in outputs.items()}, c, lbs[:1], k[:1], 0.5, "source")
    assert s0.dense_size == (128, 72) and s0.masks["road"].shape == (72, 128) and s0.depth.shape == (72, 128)
    assert s0.dense_intrinsics == k[0]
    with pytest.raises(ValueError, match="dense"):
        split_batch(outputs, c, lbs, k, 0.5, "half")


def test_boxes_map_back_through_the_letterbox_and_unknown_classes_keep_their_index():
    lb = Letterbox.fit(1280, 720, 640, 384)
    rows = np.array([[100, 12, 200, 112, 0.7, 5]], np.float32)
    (d,) = detections_to_source(rows, lb, ("car",), 0.5)
    assert (d.x1, d.y1, d.x2, d.y2) == pytest.approx((200, 0, 400, 200))
    assert d.label == "5" and d.class_index == 5


def test_distance_is_the_median_of_the_boxs_centre_and_position_back_projects_it():
    depth = np.full((100, 100), 50.0, np.float32)
    depth[40:60, 40:60] = 10.0  # the object: the centre half of the box below
    depth[45, 45] = np.inf
    assert box_distance(depth, (30, 30, 70, 70)) == pytest.approx(10.0)
    assert box_distance(np.full((10, 10), np.inf, np.float32), (0, 0, 10, 10)) is None
    k = Intrinsics(100.0, 100.0, 49.5, 49.5)
    d = Detection(39.5, 29.5, 79.5, 69.5, 0.9, 0, "car", distance=10.0)
    (x, y, z), (w, h, _) = box_position(d, k)
    assert (x, y, z) == pytest.approx((1.0, 0.0, 10.0)) and (w, h) == pytest.approx((4.0, 4.0))
    assert box_position(replace(d, distance=None), k) is None


def test_points_back_project_finite_depth_with_colours():
    depth = np.full((4, 6), 2.0, np.float32)
    depth[0, 0] = np.nan
    depth[1, 1] = np.inf
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255
    k = Intrinsics(2.0, 2.0, 2.5, 1.5)
    pts, colours = depth_to_points(depth, k, stride=1, rgb=rgb)
    assert len(pts) == 22 and np.isfinite(pts).all()
    assert pts[0] == pytest.approx([(1 - 2.5) * 2 / 2, (0 - 1.5) * 2 / 2, 2.0])  # pixel (u=1, v=0)
    assert (colours == 0xFF0000).all()
    sparse, none = depth_to_points(depth, k, stride=2)
    assert len(sparse) == 5 and none is None  # 6 samples, one NaN
    msg = out.point_cloud(Header(frame_id="cam"), pts, colours)
    data = np.frombuffer(msg.data, np.float32).reshape(-1, 4)
    np.testing.assert_array_equal(data[:, :3], pts)
    assert (data[:, 3].view(np.uint32) == 0xFF0000).all() and msg.row_step == 16 * 22


def test_dense_camera_info_scales_k_p_and_roi_from_the_calibration():
    c = contract()
    lb = Letterbox.fit(1280, 720, 64, 48)
    src = CameraInfo(width=1280, height=720, distortion_model="plumb_bob", d=[0.1, 0, 0, 0, 0])
    src.k = [1000.0, 0, 639.5, 0, 1000.0, 359.5, 0, 0, 1]
    src.p = [1000.0, 0, 639.5, -50.0, 0, 1000.0, 359.5, 0, 0, 0, 1, 0]
    src.roi.x_offset, src.roi.width, src.roi.height = 100, 640, 360
    k = Intrinsics(1000.0, 1000.0, 639.5, 359.5)
    outputs = {"road": np.zeros((1, 48, 64), np.uint8), "depth": np.ones((1, 48, 64), np.float32),
               "boxes": np.zeros((1, 1, 6), np.float32)}
    (r,) = split_batch(outputs, c, [lb], [k], 0.5)
    info = out.dense_camera_info(Header(frame_id="cam"), r, src)
    assert (info.width, info.height) == (64, 36)
    assert info.k[0] == pytest.approx(50.0) and info.k[2] == pytest.approx(31.5) and info.k[5] == pytest.approx(17.5)
    assert info.p[0] == pytest.approx(50.0) and info.p[3] == pytest.approx(-2.5) and info.p[2] == pytest.approx(31.5)
    assert (info.roi.x_offset, info.roi.width, info.roi.height) == (5, 32, 18)
    assert list(info.d) == [0.1, 0, 0, 0, 0] and info.header.frame_id == "cam"
    guessed = out.dense_camera_info(Header(), r, None)
    assert guessed.k[0] == pytest.approx(50.0) and guessed.p[10] == 1.0 and list(guessed.d) == [0.0] * 5


def test_detections_labels_and_markers_messages():
    dets = [Detection(10, 20, 30, 60, 0.9, 0, "car", 5.0), Detection(0, 0, 4, 4, 0.4, 1, "person", None)]
    arr = out.detection_array(Header(frame_id="cam"), dets)
    first = arr.detections[0]
    assert (first.bbox.center.position.x, first.bbox.center.position.y, first.bbox.size_x, first.bbox.size_y) == \
        (20, 40, 20, 40)
    assert first.results[0].hypothesis.class_id == "car" and first.results[0].hypothesis.score == pytest.approx(0.9)
    labels = out.label_info(Header(), ["car", "person"], 0.35)
    assert [(c.class_id, c.class_name) for c in labels.class_map] == [(0, "car"), (1, "person")]
    k = Intrinsics(100.0, 100.0, 20.0, 40.0)
    d3 = out.detections_3d(Header(), dets, k)
    assert len(d3.detections) == 1 and d3.detections[0].bbox.center.position.z == pytest.approx(5.0)
    m = out.markers(Header(), dets, k, "ns")
    assert m.markers[0].action == m.markers[0].DELETEALL and len(m.markers) == 3
    assert m.markers[2].text == "car 0.90 5.0m"


def test_live_inbox_keeps_only_the_freshest_frame_and_counts_the_rest():
    inbox = FrameInbox(["a", "b"], "live")
    assert not inbox.put("a", 1) and inbox.put("a", 2) and not inbox.put("b", 3)
    batch = inbox.take(timeout=0.1)
    assert [(f.camera, f.msg) for f in batch] == [("a", 2), ("b", 3)]
    assert inbox.take(timeout=0.05) == []


def test_a_pass_waits_briefly_for_the_other_cameras_of_the_same_instant():
    inbox = FrameInbox(["a", "b"], "live")
    inbox.put("a", 1)
    late = threading.Timer(0.03, lambda: inbox.put("b", 2))
    late.start()
    assert [f.msg for f in inbox.take(timeout=1.0, gather=0.5)] == [1, 2]
    late.join()
    inbox.put("a", 3)
    t0 = time.monotonic()
    assert [f.msg for f in inbox.take(timeout=1.0, gather=0.05)] == [3]  # b stays silent: no more than the window
    assert time.monotonic() - t0 < 0.5


def test_replay_inbox_keeps_every_frame_in_order_one_per_camera_per_pass():
    inbox = FrameInbox(["a", "b"], "replay")
    for i in range(3):
        assert not inbox.put("a", i)
    inbox.put("b", 10)
    assert [(f.camera, f.msg) for f in inbox.take(0.1)] == [("a", 0), ("b", 10)]
    assert [f.msg for f in inbox.take(0.1)] == [1] and [f.msg for f in inbox.take(0.1)] == [2]
    waiter = threading.Thread(target=lambda: time.sleep(0.1) or inbox.close())
    waiter.start()
    t0 = time.monotonic()
    assert inbox.take(timeout=5.0) == [] and time.monotonic() - t0 < 2.0  # close() wakes a waiting take
    waiter.join()
    with pytest.raises(ValueError):
        FrameInbox(["a"], "fast")


def test_monitor_levels_say_what_is_wrong():
    m = CameraMonitor("front", "/cam")
    level, message, _ = m.report(max_age_ms=200)
    assert level == WARN and "no frames received on /cam" in message
    for _ in range(3):
        m.received()
    m.focal_source = "camera_info"
    for stage in ("decode", "infer"):
        m.stage(stage, 12.0)
    m.published(age_ms=50.0)
    level, message, values = m.report(max_age_ms=200)
    v = dict(values)
    assert level == OK and v["published_total"] == "1" and v["latency_infer_ms"] == "12.00"
    assert v["latency_publish_ms"] == "n/a"
    m.received()
    m.dropped("stale")
    level, message, _ = m.report(max_age_ms=200)
    assert level == WARN and "falling behind: 1 frame(s) dropped as stale" in message
    m.received()
    m.dropped("malformed", "bad encoding 'x'")
    level, message, values = m.report(max_age_ms=200)
    assert level == WARN and "bad encoding 'x'" in message and dict(values)["dropped_malformed_total"] == "1"
    m.received()
    m.engine_failed("CUDA out of memory")
    assert m.report(max_age_ms=200)[:2] == (ERROR, "engine failure: CUDA out of memory")
    level, message, _ = m.report(max_age_ms=200)
    assert level == WARN and message.startswith("no frames for")
