"""hydranet_node: the ROS 2 node.

Foundation stage: the node announces itself, loads and validates its parameters (config/hydranet.yaml plus
any overrides), subscribes to each configured camera and reports on /diagnostics, once a period, what it
receives. It publishes no perception results yet: the model and the full node are later issues.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from hydranet_ros import __version__
from hydranet_ros.ros import params as P
from hydranet_ros.ros.dds import use_shm_profile

_ROS_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
    list: Parameter.Type.STRING_ARRAY,
}


def input_qos(mode: str) -> QoSProfile:
    """live: best effort, depth 1 (never a queue); replay: reliable, keep all (every frame)."""
    if mode == "replay":
        return QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1, reliability=qos_profile_sensor_data.reliability
    )


@dataclass
class CameraStats:
    received: int = 0
    last_encoding: str = ""
    last_size: tuple[int, int] = (0, 0)
    last_frame_id: str = ""
    arrivals: list[float] = field(default_factory=list)  # monotonic times within the last period


class HydraNetNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("hydranet", **kwargs)
        self._lock = threading.Lock()
        self.values = self._declare_all()
        self.cameras: list[str] = list(self.values["camera_names"])
        self.stats = {c: CameraStats() for c in self.cameras}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        qos = input_qos(self.values["mode"])
        for cam in self.cameras:
            topic = self.values[f"cameras.{cam}.image_topic"]
            msg_type = CompressedImage if self.values[f"cameras.{cam}.compressed"] else Image
            self.create_subscription(msg_type, topic, lambda m, c=cam: self._on_image(c, m), qos)

        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.values["diagnostics_period_s"], self._publish_diagnostics)
        topics = ", ".join(f"{c}: {self.values[f'cameras.{c}.image_topic']}" for c in self.cameras)
        self.get_logger().info(
            f"hydranet_node {__version__} up: mode={self.values['mode']}, cameras [{topics}]; "
            "no model is loaded yet at this stage of the project, so no perception topics are published"
        )

    # --- parameters ---------------------------------------------------------------------------------
    def _declare_all(self) -> dict[str, Any]:
        """Declare every schema parameter with a descriptor; values come from the params file(s)."""
        names = self._declare(next(p for p in P.SCHEMA if p.name == "camera_names"))
        values: dict[str, Any] = {"camera_names": names}
        if isinstance(names, list):
            for p in P.expand(names):
                if p.name != "camera_names":
                    values[p.name] = self._declare(p)
        problems = [f"parameter {n!r} has no value" for n, v in values.items() if v is None]
        problems += P.validate({n: v for n, v in values.items() if v is not None})
        # rclpy silently ignores overrides for names nobody declares; a typo in a params file must not
        # pass unnoticed, so compare the overrides with what was declared. rclpy has no public accessor.
        overrides = {n for n in getattr(self, "_parameter_overrides", {})
                     if n != "use_sim_time" and not n.startswith("qos_overrides.")}
        problems += [f"unknown parameter {n!r}" for n in sorted(overrides - set(values))]
        if problems:
            raise P.ParameterError("invalid parameters:\n  " + "\n  ".join(dict.fromkeys(problems)))
        return values

    def _declare(self, p: P.Param) -> Any:
        ros_type = _ROS_TYPES[p.type]
        descriptor = ParameterDescriptor(
            name=p.name, type=ros_type.value, description=p.description, read_only=p.read_only
        )
        # Declared by type, without a default: config/hydranet.yaml is the one place defaults live.
        # Without a value from a params file or -p, the value stays None (reported by the caller).
        return self.declare_parameter(p.name, ros_type, descriptor).value

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        schema = {p.name: p for p in P.expand(self.cameras)}
        for change in changes:
            p = schema.get(change.name)
            if p is None:
                continue  # use_sim_time and other rclpy parameters
            if why := p.validate(change.value):
                return SetParametersResult(successful=False, reason=why)
        with self._lock:
            for change in changes:
                if change.name in schema:
                    self.values[change.name] = change.value
        return SetParametersResult(successful=True)

    # --- inputs -------------------------------------------------------------------------------------
    def _on_image(self, camera: str, msg: Image | CompressedImage) -> None:
        with self._lock:
            s = self.stats[camera]
            s.received += 1
            s.arrivals.append(time.monotonic())
            s.last_frame_id = msg.header.frame_id
            if isinstance(msg, Image):
                s.last_encoding, s.last_size = msg.encoding, (msg.width, msg.height)
            else:
                s.last_encoding, s.last_size = msg.format, (0, 0)

    # --- diagnostics --------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        period = self.values["diagnostics_period_s"]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        with self._lock:
            for cam, s in self.stats.items():
                s.arrivals = [t for t in s.arrivals if now - t <= period]
                st = DiagnosticStatus(name=f"hydranet: camera {cam}", hardware_id=cam)
                if s.received == 0:
                    st.level, st.message = DiagnosticStatus.WARN, "no frames received yet"
                else:
                    st.level, st.message = DiagnosticStatus.OK, "receiving frames (no model loaded yet)"
                w, h = s.last_size
                st.values = [
                    KeyValue(key="topic", value=self.values[f"cameras.{cam}.image_topic"]),
                    KeyValue(key="frames_received", value=str(s.received)),
                    KeyValue(key="input_rate_hz", value=f"{len(s.arrivals) / period:.1f}"),
                    KeyValue(key="last_encoding", value=s.last_encoding),
                    KeyValue(key="last_size", value=f"{w}x{h}"),
                    KeyValue(key="last_frame_id", value=s.last_frame_id),
                ]
                array.status.append(st)
        self.diag_pub.publish(array)


def with_default_params(args: list[str]) -> list[str]:
    """Put the package's config/hydranet.yaml first, so the user's own files and -p override it."""
    default = ["--ros-args", "--params-file", str(P.default_config_path())]
    if "--ros-args" in args:
        i = args.index("--ros-args")
        return args[:i] + default + args[i:]
    return args + default


def spin_until_signalled(node: Node) -> None:
    """Spin until SIGINT or SIGTERM, then return normally.

    rclpy's own handler raises KeyboardInterrupt wherever the executor happens to be; inside the C
    conversion of a large image that surfaces as a RuntimeError and a non-zero exit (seen in our tests).
    A flag checked between callbacks ends every run the same, clean way.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok(context=node.context):
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()


def main(args: list[str] | None = None) -> int:
    argv = with_default_params(list(sys.argv if args is None else args))
    use_shm_profile()
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = HydraNetNode()
        spin_until_signalled(node)
    except P.ParameterError as exc:
        print(f"hydranet_node: {exc}", file=sys.stderr)
        return 2
    except ExternalShutdownException:
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
