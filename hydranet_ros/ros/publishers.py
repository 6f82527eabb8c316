"""One camera's output publishers: created from the model's tasks at configure, and each result published as
messages (ros/outputs.py builds them). Every head gets its own topic, so a head added in the spec is published
with no change here. The optional outputs (points, 3-D detections, markers, overlay) cost nothing unless
someone subscribes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from hydranet_ros.core.contract import ModelContract, Task
from hydranet_ros.ros import outputs as out
from hydranet_ros.ros.convert import numpy_to_image
from hydranet_ros.runtime.ground import GridSpec
from hydranet_ros.runtime.overlay import render_overlay
from hydranet_ros.runtime.postprocess import FrameResult, depth_to_points

# Reliable + volatile: what `ros2 bag record`, RViz's defaults and best-effort subscribers all accept.
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
# Labels are published once: late joiners (RViz, a recorder started later) get them from the durability.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True)
class KindPublisher:
    """How one task kind is published: its topics (relative to the camera's namespace, with their message types)
    and the messages of one frame. `scored`: its LabelInfo carries the node's score threshold."""

    topics: Callable[[Task], list[tuple[str, type]]]
    publish: Callable[[dict[str, Any], Task, FrameResult, Header, CameraInfo | None], None]
    scored: bool = False


def _publish_mask(pubs: dict[str, Any], task: Task, r: FrameResult, header: Header, _info: CameraInfo | None) -> None:
    pubs[task.name].publish(numpy_to_image(r.masks[task.name], "mono8", header))


def _publish_depth(pubs: dict[str, Any], task: Task, r: FrameResult, header: Header, info: CameraInfo | None) -> None:
    pubs[task.name].publish(numpy_to_image(r.depths[task.name], "32FC1", header))
    pubs[f"{task.name}/camera_info"].publish(out.dense_camera_info(header, r, info))


def _publish_boxes(pubs: dict[str, Any], task: Task, r: FrameResult, header: Header, _info: CameraInfo | None) -> None:
    pubs[task.name].publish(out.detection_array(header, r.detections[task.name]))


PUBLISHERS: dict[str, KindPublisher] = {
    "segmentation": KindPublisher(lambda t: [(t.name, Image)], _publish_mask),
    "depth": KindPublisher(lambda t: [(t.name, Image), (f"{t.name}/camera_info", CameraInfo)], _publish_depth),
    "detection": KindPublisher(lambda t: [(t.name, Detection2DArray)], _publish_boxes, scored=True),
}


class CameraPublishers:
    """`~/<camera>/<head>` per head (+ `<head>/camera_info` for depth, `<head>/label_info` for heads with classes),
    `points` (from the first depth head), `detections_3d` and `markers` (with a depth and a detection head),
    `drivable_grid` (with the road head), `lane_polylines` (with the lane head), and `overlay`."""

    def __init__(self, node: Any, camera: str, frame_id: str, contract: ModelContract,
                 score_threshold: float, road_head: str = "", lane_head: str = "") -> None:
        self.node = node
        self.camera = camera
        base = f"~/{camera}"
        pubs: dict[str, Any] = {}

        def create(name: str, msg_type: type, qos: QoSProfile = OUTPUT_QOS) -> Any:
            pubs[name] = node.create_publisher(msg_type, f"{base}/{name}", qos)
            return pubs[name]

        self.tasks = contract.tasks
        for task in contract.tasks:
            kind = PUBLISHERS[task.type]
            for name, msg_type in kind.topics(task):
                create(name, msg_type)
            if task.classes:
                threshold = score_threshold if kind.scored else 0.0
                create(f"{task.name}/label_info", LabelInfo, LATCHED_QOS).publish(
                    out.label_info(Header(frame_id=frame_id), task.classes, threshold))
        if contract.tasks_of_type("depth"):
            create("points", PointCloud2)
        if any(t.name == road_head and t.type == "segmentation" for t in contract.tasks):
            create("drivable_grid", OccupancyGrid)
        if any(t.name == lane_head and t.type == "segmentation" for t in contract.tasks):
            create("lane_polylines", MarkerArray)
        create("overlay", Image)
        if contract.tasks_of_type("detection") and contract.tasks_of_type("depth"):
            create("detections_3d", Detection3DArray)
            create("markers", MarkerArray)
        self.pubs = pubs

    def wanted(self, name: str) -> bool:
        """An optional output that someone listens to."""
        return name in self.pubs and self.pubs[name].get_subscription_count() > 0

    def publish(self, header: Header, rgb: np.ndarray, r: FrameResult, info: CameraInfo | None,
                points_stride: int, grid: tuple[str, GridSpec] | None = None) -> None:
        """Every output of one frame, each with `header` (the camera's stamp); the drivable grid (when the result
        has one) and the lane polylines in `grid`'s frame (base_frame), the grid with its spec."""
        pubs = self.pubs
        for task in self.tasks:
            PUBLISHERS[task.type].publish(pubs, task, r, header, info)
        if r.depth is not None and self.wanted("points"):
            colours = cv2.resize(rgb, r.dense_size, interpolation=cv2.INTER_AREA)
            pts, rgb_packed = depth_to_points(r.depth, r.dense_intrinsics, points_stride, colours)
            pubs["points"].publish(out.point_cloud(header, pts, rgb_packed))
        all_boxes = [d for boxes in r.detections.values() for d in boxes]
        if self.wanted("detections_3d"):
            pubs["detections_3d"].publish(out.detections_3d(header, all_boxes, r.source_intrinsics))
        if self.wanted("markers"):
            pubs["markers"].publish(out.markers(header, all_boxes, r.source_intrinsics, f"hydranet/{self.camera}"))
        if r.grid is not None and grid is not None and "drivable_grid" in pubs:
            pubs["drivable_grid"].publish(out.occupancy_grid(Header(stamp=header.stamp, frame_id=grid[0]), r.grid,
                                                             grid[1]))
        if r.lanes is not None and grid is not None and "lane_polylines" in pubs:
            pubs["lane_polylines"].publish(out.lane_markers(Header(stamp=header.stamp, frame_id=grid[0]), r.lanes))
        if self.wanted("overlay"):
            pubs["overlay"].publish(numpy_to_image(render_overlay(rgb, r), "rgb8", header))

    def destroy(self) -> None:
        for pub in self.pubs.values():
            self.node.destroy_publisher(pub)
        self.pubs = {}
