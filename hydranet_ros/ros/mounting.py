"""The cameras' mountings as the vehicle's TF tree states them (/tf_static, /tf), else as the parameters do.

TF is read into a `core.mounting.TransformGraph` (numpy, no tf2 library): static transforms with the durability
`tf2_ros` uses (transient local, so a robot_state_publisher started earlier is heard), dynamic ones volatile. A
camera's mounting is the pose of its images' frame_id in `base_frame`; where TF has no path between them, the
`cameras.<name>.mounting` parameter; else none.
"""

from __future__ import annotations

import threading
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from hydranet_ros.core.mounting import Mounting, MountingError, TransformGraph

# As tf2_ros: /tf_static latched (transient local), /tf volatile, both reliable with room for a burst.
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)


class MountingSource:
    """Thread-safe: the executor feeds TF, the inference thread asks for mountings."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.graph = TransformGraph()
        self._lock = threading.Lock()
        self._subs = [node.create_subscription(TFMessage, "/tf_static", self._on_tf, TF_STATIC_QOS),
                      node.create_subscription(TFMessage, "/tf", self._on_tf, TF_QOS)]

    def _on_tf(self, msg: TFMessage) -> None:
        with self._lock:
            for t in msg.transforms:
                tr, q = t.transform.translation, t.transform.rotation
                self.graph.set(t.header.frame_id, t.child_frame_id, (tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))

    @property
    def rejected(self) -> int:
        """Transforms ignored because they were not finite rigid transforms (NaN, a zero quaternion)."""
        return self.graph.rejected

    def mounting(self, base_frame: str, frame_id: str, parameter: Mounting | None) -> tuple[Mounting | None, str]:
        """The camera's mounting and, without one, why: TF first, then the parameter's."""
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
        if parameter is not None:
            return parameter, ""
        return None, f"{why}, and no mounting parameter"

    def destroy(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []
