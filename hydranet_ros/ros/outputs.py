"""Results -> ROS messages: pure functions, no node, no graph (tested on their own).

Conventions: masks are `mono8` class ids (the index into the task's LabelInfo); depth is REP 118 `32FC1` metres
along the optical axis (+inf beyond the model's range); boxes are in the source image's pixels; the CameraInfo of
a dense output describes that output's resolution exactly (K, P and ROI scaled, as image_pipeline's resize does).
"""

from __future__ import annotations

import array

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import (
    BoundingBox2D,
    BoundingBox3D,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    LabelInfo,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
    VisionClass,
)
from visualization_msgs.msg import Marker, MarkerArray

from hydranet_ros.core.geometry import Intrinsics
from hydranet_ros.runtime.ground import DISTANCE_REL_SIGMA, GridSpec
from hydranet_ros.runtime.lanes import LaneLine
from hydranet_ros.runtime.overlay import BOX_COLOURS
from hydranet_ros.runtime.postprocess import Detection, FrameResult, box_position


def dense_camera_info(header: Header, result: FrameResult, source: CameraInfo | None) -> CameraInfo:
    """The CameraInfo of the dense outputs (depth, masks): `source`'s calibration scaled to their resolution;
    without a calibration, the intrinsics the node assumed (see FrameResult.dense_intrinsics)."""
    w, h = result.dense_size
    k = result.dense_intrinsics
    info = CameraInfo(header=header, width=w, height=h)
    info.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    if source is not None and source.width > 0 and source.height > 0:
        sx, sy = w / source.width, h / source.height
        p = np.array(source.p, dtype=np.float64).reshape(3, 4)
        p[0, 0], p[0, 2], p[0, 3] = p[0, 0] * sx, (p[0, 2] + 0.5) * sx - 0.5, p[0, 3] * sx
        p[1, 1], p[1, 2], p[1, 3] = p[1, 1] * sy, (p[1, 2] + 0.5) * sy - 0.5, p[1, 3] * sy
        info.p = p.flatten().tolist()
        info.r = list(source.r)
        info.d = list(source.d)
        info.distortion_model = source.distortion_model
        roi = source.roi
        info.roi = RegionOfInterest(
            x_offset=int(roi.x_offset * sx), y_offset=int(roi.y_offset * sy), width=int(roi.width * sx),
            height=int(roi.height * sy), do_rectify=roi.do_rectify,
        )
    else:
        info.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
    return info


def detection_array(header: Header, detections: list[Detection]) -> Detection2DArray:
    """Boxes as vision_msgs: centre and size in source pixels; class_id is the class name (LabelInfo has ids)."""
    out = Detection2DArray(header=header)
    for d in detections:
        box = BoundingBox2D()
        box.center.position.x, box.center.position.y = (d.x1 + d.x2) / 2.0, (d.y1 + d.y2) / 2.0
        box.size_x, box.size_y = d.x2 - d.x1, d.y2 - d.y1
        hyp = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=d.label, score=d.score))
        out.detections.append(Detection2D(header=header, results=[hyp], bbox=box))
    return out


def label_info(header: Header, classes: list[str] | tuple[str, ...], threshold: float) -> LabelInfo:
    return LabelInfo(
        header=header,
        class_map=[VisionClass(class_id=i, class_name=name) for i, name in enumerate(classes)],
        threshold=float(threshold),
    )


def point_cloud(header: Header, points: np.ndarray, rgb: np.ndarray | None) -> PointCloud2:
    """(N, 3) float32 xyz (+ (N,) uint32 0x00RRGGBB) -> an unorganised PointCloud2 (height 1), RViz's rgb layout
    (packed into a FLOAT32 field, as PCL writes it)."""
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    if rgb is not None:
        fields.append(PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1))
        data = np.empty((len(points), 4), np.float32)
        data[:, :3] = points
        data[:, 3] = rgb.astype(np.uint32).view(np.float32)
    else:
        data = np.ascontiguousarray(points, np.float32)
    msg = PointCloud2(header=header, height=1, width=len(points), fields=fields, is_bigendian=False,
                      point_step=data.shape[1] * 4 if len(points) else 4 * len(fields), is_dense=True)
    msg.row_step = msg.point_step * msg.width
    msg.data = data.tobytes()
    return msg


def detections_3d(header: Header, detections: list[Detection], k: Intrinsics) -> Detection3DArray:
    """Boxes with a distance -> object positions in the camera's optical frame (boxes without depth skipped)."""
    out = Detection3DArray(header=header)
    for d in detections:
        located = box_position(d, k)
        if located is None:
            continue
        (x, y, z), (sx, sy, sz) = located
        pose = Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(w=1.0))
        hyp = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=d.label, score=d.score))
        hyp.pose.pose = pose
        hyp.pose.covariance = position_covariance((x, y, z), DISTANCE_REL_SIGMA.get(d.distance_from, 0.2))
        bbox = BoundingBox3D(center=pose, size=Vector3(x=sx, y=sy, z=sz))
        out.detections.append(Detection3D(header=header, results=[hyp], bbox=bbox))
    return out


def occupancy_grid(header: Header, grid: np.ndarray, spec: GridSpec) -> OccupancyGrid:
    """A bird's-eye grid (int8 [rows along y, columns along x], runtime/ground.py values) in header.frame_id."""
    msg = OccupancyGrid(header=header)
    msg.info.resolution = float(spec.resolution)
    msg.info.height, msg.info.width = (int(n) for n in grid.shape)
    msg.info.origin = Pose(position=Point(x=spec.x_min, y=spec.y_min, z=0.0), orientation=Quaternion(w=1.0))
    msg.info.map_load_time = header.stamp
    msg.data = array.array("b", np.ascontiguousarray(grid, np.int8).tobytes())
    return msg


def lane_markers(header: Header, lines: list[LaneLine]) -> MarkerArray:
    """Lane lines for RViz and for programs: DELETEALL, then per line a LINE_STRIP in header.frame_id (base_frame)
    with a point every metre, id = its rank by lateral offset (0: the nearest), colour alpha = its confidence, and
    `text` = "confidence C; y = c0 + c1 x + c2 x^2; c0 c1 c2; x_min x_max" (the fit, machine-readable)."""
    out = MarkerArray(markers=[Marker(header=header, ns="lane_lines", action=Marker.DELETEALL)])
    for i, line in enumerate(lines):
        c0, c1, c2 = line.coefficients
        m = Marker(header=header, ns="lane_lines", id=i, type=Marker.LINE_STRIP, action=Marker.ADD,
                   pose=Pose(orientation=Quaternion(w=1.0)), scale=Vector3(x=0.15),
                   color=ColorRGBA(r=1.0, g=0.85, b=0.1, a=max(0.2, float(line.confidence))),
                   text=f"confidence {line.confidence:.2f}; y = c0 + c1 x + c2 x^2; {c0:.4f} {c1:.5f} {c2:.6f}; "
                        f"{line.x_min:.2f} {line.x_max:.2f}")
        m.points = [Point(x=float(x), y=float(y), z=0.0) for x, y in line.polyline()]
        out.markers.append(m)
    return out


def position_covariance(p: tuple[float, float, float], rel_sigma: float) -> list[float]:
    """The 6x6 pose covariance (row-major) of a position known up to its distance along the viewing ray:
    (rel_sigma * p)(rel_sigma * p)^T, plus 1 cm^2 so that it is invertible; orientation unknown (-1 on its
    diagonal is not allowed in PoseWithCovariance, so a large variance)."""
    v = np.asarray(p, np.float64) * rel_sigma
    cov = np.zeros((6, 6))
    cov[:3, :3] = np.outer(v, v) + np.eye(3) * 1e-4
    cov[3:, 3:] = np.eye(3) * 1e6
    return cov.ravel().tolist()


def markers(header: Header, detections: list[Detection], k: Intrinsics, namespace: str) -> MarkerArray:
    """RViz markers: a translucent box and a "class score distance" label per located object. The array starts
    with DELETEALL so that objects of the previous frame never linger."""
    out = MarkerArray(markers=[Marker(header=header, ns=namespace, action=Marker.DELETEALL)])
    for i, d in enumerate(detections):
        located = box_position(d, k)
        if located is None:
            continue
        (x, y, z), (sx, sy, sz) = located
        r, g, b = (c / 255.0 for c in BOX_COLOURS[d.class_index % len(BOX_COLOURS)])
        pose = Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(w=1.0))
        cube = Marker(header=header, ns=namespace, id=2 * i, type=Marker.CUBE, action=Marker.ADD, pose=pose,
                      scale=Vector3(x=max(sx, 0.05), y=max(sy, 0.05), z=max(sz, 0.05)),
                      color=ColorRGBA(r=r, g=g, b=b, a=0.4))
        text_pose = Pose(position=Point(x=x, y=y - sy / 2 - 0.3, z=z), orientation=Quaternion(w=1.0))
        text = Marker(header=header, ns=namespace, id=2 * i + 1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                      pose=text_pose, scale=Vector3(z=0.5), color=ColorRGBA(r=r, g=g, b=b, a=1.0),
                      text=f"{d.label} {d.score:.2f} {d.distance:.1f}m" + (" (ground)" if d.distance_from == "ground"
                                                                              else ""))
        out.markers += [cube, text]
    return out
