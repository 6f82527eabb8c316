"""The cameras' mountings as the vehicle's TF tree states them (/tf_static, /tf), else as the parameters do.

TF is read into a `core.mounting.TransformGraph` (numpy, no tf2 library): static transforms with the durability
`tf2_ros` uses (transient local, so a robot_state_publisher started earlier is heard), dynamic ones volatile. A
camera's mounting is the pose of its images' frame_id in `base_frame`; where TF has no path between them, the
`cameras.<name>.mounting` parameter; else none.

A mounting that comes from the parameter is also published on /tf_static (base_frame -> the images' frame_id, as
`tf2_ros`' static broadcaster does; parameter `publish_mounting_tf`), so that RViz, recorders and the rest of the
stack place the camera's outputs with the drivable grid and the lane polylines in base_frame without a second copy
of the numbers in a static_transform_publisher. Never where TF already gives the frame a parent: TF stays the
authority, and a transform for that frame heard later from another node withdraws the node's own.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from hydranet_ros.core.mounting import Mounting, MountingError, TransformGraph

# As tf2_ros: /tf_static latched (transient local), /tf volatile, both reliable with room for a burst.
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
# tf2_ros.StaticTransformBroadcaster's: one latched message that holds all of a node's static transforms.
TF_STATIC_PUB_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
Edge = tuple[str, tuple[float, float, float], tuple[float, float, float, float]]  # parent, translation, xyzw


def _same(a: Edge, b: Edge) -> bool:
    return a[0] == b[0] and bool(np.allclose(a[1], b[1], atol=1e-6) and np.allclose(a[2], b[2], atol=1e-6))


class MountingSource:
    """Thread-safe: the executor feeds TF, the inference thread asks for mountings."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.graph = TransformGraph()  # other nodes' TF (the node's own broadcasts are left out)
        self._lock = threading.Lock()
        self._published: dict[str, Edge] = {}  # child frame -> the edge this node states on /tf_static
        self._sent: dict[str, list[Edge]] = {}  # every edge ever sent per child: their echoes are not others' TF
        self._advertised: dict[str, tuple[str, Mounting]] = {}  # child -> what _advertise last stated for it
        self.withdrawn: dict[str, str] = {}  # child frame -> why the node no longer publishes it
        self._pub: Any = None
        self._subs = [node.create_subscription(TFMessage, "/tf_static", self._on_tf, TF_STATIC_QOS),
                      node.create_subscription(TFMessage, "/tf", self._on_tf, TF_QOS)]

    def _on_tf(self, msg: TFMessage) -> None:
        changed = False
        with self._lock:
            for t in msg.transforms:
                tr, q = t.transform.translation, t.transform.rotation
                parent, child = t.header.frame_id.lstrip("/"), t.child_frame_id.lstrip("/")
                edge = (parent, (tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))
                if any(_same(edge, e) for e in self._sent.get(child, [])):
                    continue  # the node's own /tf_static, heard back
                if self.graph.set(parent, child, edge[1], edge[2]) and child in self._published:
                    del self._published[child]
                    self._advertised.pop(child, None)
                    self.withdrawn[child] = f"TF gives {child} the parent {parent}"
                    changed = True
            if changed:
                self._broadcast()
        if changed:
            self.node.get_logger().warn(
                f"another node publishes a transform to {', '.join(self.withdrawn)}: TF's mounting is used from now "
                "on, and the node stopped publishing the one from its mounting parameter (set only one of the two)")

    def _broadcast(self) -> None:
        """Send every edge the node states, in one latched message (under the lock)."""
        if self._pub is None:
            self._pub = self.node.create_publisher(TFMessage, "/tf_static", TF_STATIC_PUB_QOS)
        stamp = self.node.get_clock().now().to_msg()
        msg = TFMessage()
        for child, (parent, xyz, xyzw) in self._published.items():
            t = TransformStamped()
            t.header.stamp, t.header.frame_id, t.child_frame_id = stamp, parent, child
            tr, q = t.transform.translation, t.transform.rotation
            (tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w) = xyz, xyzw
            msg.transforms.append(t)
        self._pub.publish(msg)

    def _advertise(self, base_frame: str, frame_id: str, mounting: Mounting) -> None:
        """State a parameter's mounting on /tf_static, unless TF already gives the frame a parent (under the lock).
        Called every frame: the same mounting (parsed once per parameter change) for the same frames costs a lookup."""
        child = frame_id.lstrip("/")
        last = self._advertised.get(child)
        if last is not None and last[0] == base_frame and last[1] is mounting:
            return
        if child in self.withdrawn or self.graph.has_parent(child) or child == base_frame.lstrip("/"):
            return
        self._advertised[child] = (base_frame, mounting)
        edge = (base_frame.lstrip("/"), *mounting.transform())
        if child in self._published and _same(edge, self._published[child]):
            return
        self._published[child] = edge
        self._sent.setdefault(child, []).append(edge)
        self._broadcast()

    def _retract(self, frame_id: str) -> None:
        """Stop stating a frame's mounting on /tf_static (under the lock)."""
        self._advertised.pop(frame_id.lstrip("/"), None)
        if self._published.pop(frame_id.lstrip("/"), None) is not None:
            self._broadcast()

    def published(self, frame_id: str) -> bool:
        """Whether the node states this frame's mounting on /tf_static."""
        with self._lock:
            return frame_id.lstrip("/") in self._published

    @property
    def rejected(self) -> int:
        """Transforms ignored because they were not finite rigid transforms (NaN, a zero quaternion)."""
        return self.graph.rejected

    def mounting(self, base_frame: str, frame_id: str, parameter: Mounting | None,
                 publish: bool = False) -> tuple[Mounting | None, str]:
        """The camera's mounting and, without one, why: TF first, then the parameter's (`publish`: stated on
        /tf_static too, where TF does not know the frame)."""
        why = f"no transform from {base_frame} to {frame_id!r} on /tf or /tf_static"
        if frame_id:
            with self._lock:
                try:
                    found = self.graph.mounting(base_frame, frame_id)
                except MountingError as exc:
                    found, why = None, f"TF's {base_frame} -> {frame_id} is impossible: {exc}"
            if found is not None:
                return found, ""
        else:
            why = "the images have no frame_id"
        if frame_id and (publish and parameter is not None or frame_id.lstrip("/") in self._published):
            with self._lock:
                if publish and parameter is not None:
                    self._advertise(base_frame, frame_id, parameter)
                else:  # the parameter was cleared: what the node stated on /tf_static no longer holds
                    self._retract(frame_id)
        if parameter is not None:
            return parameter, ""
        return None, f"{why}, and no mounting parameter"

    def destroy(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []
        if self._pub is not None:
            self.node.destroy_publisher(self._pub)
            self._pub = None
