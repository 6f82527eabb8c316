"""Camera mounting (core/mounting.py) and the road-anchored depth scale (runtime/road_scale.py): the geometry
against hand-derived cases, TF chains against the mounting parameter, and the scale's robustness."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hydranet_ros.core.geometry import Intrinsics
from hydranet_ros.core.mounting import (
    BODY_FROM_OPTICAL,
    Mounting,
    MountingError,
    TransformGraph,
    quaternion_of,
    rotation_quaternion,
)
from hydranet_ros.runtime.road_scale import RoadScale, RoadScaleOptions

K = Intrinsics(700.0, 700.0, 639.5, 359.5)
SIZE = (1280, 720)
# The optical frame in a REP 103 body frame, as robot descriptions publish it (camera_link -> *_optical_frame).
OPTICAL_IN_BODY = (-0.5, 0.5, -0.5, 0.5)


def test_a_level_camera_sees_the_road_where_similar_triangles_put_it():
    m = Mounting.from_pose([1.5, 0.0, 1.65, 0.0, 0.0, 0.0])
    assert (m.height, m.pitch_deg) == (pytest.approx(1.65), pytest.approx(0.0))
    for depth in (5.0, 10.0, 40.0):  # a road point `depth` ahead is 1.65 m below the axis: v = cy + fy h / Z
        assert m.ground_depth_at(K, K.cx, K.cy + K.fy * 1.65 / depth) == pytest.approx(depth)
    assert m.ground_depth_at(K, K.cx, K.cy - 1) == math.inf  # above the horizon: never the road
    ground = m.ground_depth(K, SIZE)
    assert np.isinf(ground[:360]).all() and np.isfinite(ground[361:]).all()
    assert ground[719, 639] == pytest.approx(1.65 * K.fy / (719 - K.cy), rel=1e-6)


def test_a_pitched_and_yawed_camera_matches_the_explicit_geometry():
    pitch, yaw = math.radians(6.0), math.radians(-10.0)
    m = Mounting.from_pose([0.5, -0.3, 2.0, 0.0, pitch, yaw])
    assert m.pitch_deg == pytest.approx(6.0)
    # A road point P in base_link; its optical depth and pixel from the mounting's transform, by hand.
    for p in ([12.0, -4.0, 0.0], [30.0, 2.0, 0.0], [6.0, -1.0, 0.0]):
        p_opt = m.rotation.T @ (np.array(p) - m.translation)
        u, v = K.fx * p_opt[0] / p_opt[2] + K.cx, K.fy * p_opt[1] / p_opt[2] + K.cy
        assert m.ground_depth_at(K, u, v) == pytest.approx(p_opt[2], rel=1e-9)


def test_tf_chains_give_the_same_mounting_as_the_parameter():
    pose = [1.2, 0.1, 1.55, 0.01, 0.05, -0.02]
    by_param = Mounting.from_pose(pose)
    g = TransformGraph()
    # base_link -> chassis -> camera_link -> camera_optical, as a URDF publishes them; the body pose split in two.
    from hydranet_ros.core.mounting import rotation_rpy

    q_body = quaternion_of(rotation_rpy(*pose[3:]))
    assert g.set("base_link", "chassis", [0.2, 0.0, 0.3], [0, 0, 0, 1])
    assert g.set("chassis", "camera_link", [1.0, 0.1, 1.25], q_body)
    assert g.set("camera_link", "camera_optical", [0, 0, 0], OPTICAL_IN_BODY)
    by_tf = g.mounting("base_link", "/camera_optical")
    assert by_tf is not None and by_tf.source == "tf"
    np.testing.assert_allclose(by_tf.rotation, by_param.rotation, atol=1e-12)
    np.testing.assert_allclose(by_tf.translation, by_param.translation, atol=1e-12)
    # Looked up the other way round, and through a common ancestor.
    r, t = g.lookup("camera_optical", "base_link")
    np.testing.assert_allclose(r, by_param.rotation.T, atol=1e-12)
    assert g.set("base_link", "lidar", [0.0, 0.0, 2.0], [0, 0, 0, 1])
    r, t = g.lookup("lidar", "camera_optical")
    np.testing.assert_allclose(t, by_param.translation - [0.0, 0.0, 2.0], atol=1e-12)
    assert g.mounting("base_link", "elsewhere") is None


def test_a_mounting_as_a_tf_transform_round_trips_and_half_turns_survive():
    # What the node publishes on /tf_static for a parameter's mounting is what TF gives back.
    m = Mounting.from_pose([1.2, 0.1, 1.55, 0.01, 0.05, -0.02])
    xyz, xyzw = m.transform()
    back = Mounting.from_transform(xyz, xyzw)
    np.testing.assert_allclose(back.rotation, m.rotation, atol=1e-12)
    np.testing.assert_allclose(back.translation, m.translation, atol=1e-12)
    assert quaternion_of(BODY_FROM_OPTICAL) == pytest.approx(OPTICAL_IN_BODY)  # as URDFs state it
    # Every branch of the matrix -> quaternion conversion, rotations by ~180 deg (w ~ 0) included.
    rng = np.random.default_rng(1)
    for q in [*rng.normal(size=(200, 4)), [1, 0, 0, 1e-9], [0, 1, 0, 0], [0, 0, 1, 0], [0.6, 0.8, 0, 0]]:
        r = rotation_quaternion(*q)
        np.testing.assert_allclose(rotation_quaternion(*quaternion_of(r)), r, atol=1e-9)
        assert quaternion_of(r)[3] >= 0


def test_impossible_mountings_and_transforms_are_refused():
    with pytest.raises(MountingError, match="above the road"):
        Mounting.from_pose([0, 0, -0.5, 0, 0, 0])  # under the road
    with pytest.raises(MountingError, match="at the sky"):
        Mounting.from_pose([0, 0, 1.5, 0, -0.6, 0])  # 34 deg up
    with pytest.raises(MountingError, match=r"\[x, y, z, roll, pitch, yaw\]"):
        Mounting.from_pose([0, 0, 1.5])
    with pytest.raises(MountingError, match="finite"):
        Mounting.from_pose([0, 0, float("nan"), 0, 0, 0])
    g = TransformGraph()
    assert not g.set("base_link", "cam", [0, 0, float("nan")], [0, 0, 0, 1])
    assert not g.set("base_link", "cam", [0, 0, 1], [0, 0, 0, 0])
    assert g.rejected == 2 and g.lookup("base_link", "cam") is None


def _road_scene(true_scale: float, rng: np.random.Generator, outliers: float = 0.0):
    """A depth map that is the flat road's depth / true_scale, the road mask the lower 40 % of the image, and
    a fraction of road pixels that are something else (a car's bottom, a wrong mask)."""
    k, size = Intrinsics(350.0, 350.0, 319.5, 179.5), (640, 360)
    ground = Mounting.from_pose([0, 0, 1.6, 0, 0.02, 0]).ground_depth(k, size)
    depth = np.where(np.isfinite(ground), ground / true_scale, 80.0).astype(np.float32)
    road = np.zeros(ground.shape, bool)
    road[216:] = True
    noisy = road & (rng.random(road.shape) < outliers)
    depth[noisy] *= rng.uniform(0.3, 0.6, noisy.sum()).astype(np.float32)
    return depth, road, ground


def test_the_road_scale_recovers_a_known_scale_despite_outliers_and_says_when_it_cannot():
    rng = np.random.default_rng(0)
    est = RoadScale().update(*_road_scene(1.3, rng, outliers=0.2))
    assert est.source == "road" and est.scale == pytest.approx(1.3, rel=0.01) and est.pixels > 1000
    # Too little road: the network's own scale, with the reason.
    depth, road, ground = _road_scene(1.3, rng)
    road[:] = False
    road[-3:, :20] = True
    est = RoadScale().update(depth, road, ground)
    assert (est.source, est.scale) == ("network", 1.0) and "road pixels" in est.reason
    # Out of bounds (a wrong mounting, e.g. millimetres for metres): refused.
    est = RoadScale().update(*_road_scene(9.0, rng))
    assert est.source == "network" and "outside" in est.reason


def test_the_road_scale_is_smoothed_holds_through_outlier_frames_and_then_lets_go():
    rng = np.random.default_rng(1)
    state = RoadScale(RoadScaleOptions(smoothing=0.5, hold_frames=2))
    assert state.update(*_road_scene(1.2, rng)).scale == pytest.approx(1.2, rel=0.01)
    second = state.update(*_road_scene(1.3, rng))
    assert second.source == "road" and 1.2 < second.scale < 1.3  # halfway in log space
    jump = state.update(*_road_scene(2.5, rng))  # one wild frame: the running scale holds
    assert jump.source == "held" and jump.scale == pytest.approx(second.scale) and "jumps" in jump.reason
    depth, road, ground = _road_scene(1.3, rng)
    road[:] = False
    assert state.update(depth, road, ground).source == "held"
    assert state.update(depth, road, ground).source == "network"  # held for hold_frames, then the network's


def test_boxes_standing_on_the_ground_take_its_distance_and_hidden_ones_keep_their_depth():
    from hydranet_ros.ros.outputs import position_covariance
    from hydranet_ros.runtime.ground import DISTANCE_REL_SIGMA, ground_contacts
    from hydranet_ros.runtime.postprocess import Detection, FrameResult

    m = Mounting.from_pose([0, 0, 1.6, 0, 0, 0])
    r = FrameResult((1280, 720), (640, 360), K.scaled(0.5, 0.5), K)
    r.masks["drivable_area"] = np.zeros((360, 640), np.uint8)
    r.masks["drivable_area"][200:, 200:440] = 1  # the lane ahead
    near = Detection(500, 380, 780, 560, 0.9, 0, "vehicle", 7.0, "depth")  # on the lane
    behind = Detection(560, 350, 700, 450, 0.8, 0, "vehicle", 14.0, "depth")  # its bottom hidden by `near`
    cut = Detection(0, 500, 300, 719, 0.7, 0, "vehicle", 3.0, "depth")  # cut by the image's bottom
    parked = Detection(1000, 380, 1200, 480, 0.6, 0, "vehicle", 20.0, "depth")  # beside the lane, clear
    r.detections["detections"] = [near, behind, cut, parked]
    assert ground_contacts(r, m) == 2
    got = {d.score: d for d in r.detections["detections"]}
    assert got[0.9].distance_from == "ground" and got[0.9].distance == pytest.approx(
        m.ground_depth_at(K, 640, 560))
    assert got[0.6].distance_from == "ground" and got[0.6].distance == pytest.approx(m.ground_depth_at(K, 1100, 480))
    assert (got[0.8].distance, got[0.8].distance_from) == (14.0, "depth")
    assert (got[0.7].distance, got[0.7].distance_from) == (3.0, "depth")
    # detections_3d: the position's covariance states the source, along the viewing ray.
    cov = np.array(position_covariance((1.0, 0.5, 10.0), DISTANCE_REL_SIGMA["ground"])).reshape(6, 6)
    assert math.sqrt(cov[2, 2] - 1e-4) == pytest.approx(0.9) and cov[0, 2] == pytest.approx(0.09 * 0.9)


def test_lane_lines_are_found_as_polylines_through_dashes_and_curves():
    from hydranet_ros.runtime.lanes import LaneOptions, find_lines, lane_lines

    rng = np.random.default_rng(3)
    x = rng.uniform(3, 40, 6000)
    dashed = (x % 12.0) < 3.0  # 3 m of paint, 9 m of gap
    left = np.stack([x, 1.8 + 0.002 * x * x + rng.normal(0, 0.03, x.size)], 1)[dashed]
    right = np.stack([x, -1.7 + 0.002 * x * x + rng.normal(0, 0.03, x.size)], 1)
    clutter = np.stack([rng.uniform(3, 40, 40), rng.uniform(-8, 8, 40)], 1)
    lines = find_lines(np.concatenate([left, right, clutter]), LaneOptions())
    assert len(lines) == 2
    near, far = sorted(lines, key=lambda line: line.coefficients[0])
    assert near.coefficients == pytest.approx((-1.7, 0.0, 0.002), abs=0.03)
    assert far.coefficients[0] == pytest.approx(1.8, abs=0.1) and far.coefficients[2] == pytest.approx(0.002, abs=3e-4)
    assert far.x_max > 30 and near.confidence > far.confidence  # dashes: the gaps lower the confidence
    xs = np.linspace(near.x_min, near.x_max, 20)
    np.testing.assert_allclose(near.polyline()[:, 1], near.y(near.polyline()[:, 0]))
    assert np.abs(near.y(xs) - (-1.7 + 0.002 * xs * xs)).max() < 0.1
    # From an image: a camera 1.5 m up sees a straight line 1.8 m to its left.
    m = Mounting.from_pose([0, 0, 1.5, 0, 0, 0])
    mask = np.zeros((720, 1280), bool)
    for depth in np.linspace(4, 35, 400):
        u, v = K.fx * -1.8 / depth + K.cx, K.fy * 1.5 / depth + K.cy
        mask[int(round(v)), int(round(u)) - 2:int(round(u)) + 3] = True
    (line,) = lane_lines(mask, K, m)
    assert line.coefficients[0] == pytest.approx(1.8, abs=0.05) and abs(line.coefficients[1]) < 0.01


def test_grids_fuse_conservatively_and_cells_outside_the_view_stay_unknown():
    from hydranet_ros.runtime.ground import FREE, OCCUPIED, UNKNOWN, GridSpec, GroundGrid, fuse_grids

    a = np.array([[FREE, FREE, UNKNOWN, OCCUPIED]], np.int8)
    b = np.array([[FREE, OCCUPIED, UNKNOWN, UNKNOWN]], np.int8)
    np.testing.assert_array_equal(fuse_grids([a, b]), [[FREE, OCCUPIED, UNKNOWN, OCCUPIED]])
    # A level camera 1.5 m up, the road everywhere below the horizon: free ahead within range, unknown behind it,
    # beside its field of view and beyond max_range.
    m = Mounting.from_pose([0, 0, 1.5, 0, 0, 0])
    road = np.zeros((720, 1280), bool)
    road[361:] = True
    spec = GridSpec(resolution=1.0, x_min=-10, x_max=50, y_min=-20, y_max=20, max_range=30)
    g = GroundGrid().grid(road, K, m, spec)
    assert g.shape == (40, 60)
    assert (g[18:22, 15:35] == FREE).all()  # x 5-25 m, y +-2 m
    assert (g[:, :10] == UNKNOWN).all() and (g[:, 41:] == UNKNOWN).all()  # behind; beyond 30 m
    assert g[0, 12] == UNKNOWN  # 20 m to the side at 2 m ahead: outside the 85 deg field of view
