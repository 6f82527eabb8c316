"""hydranet_node: N cameras in, one batched HydraNet pass, drivable area + lane lines + depth + detections out.

A lifecycle node (configure: load and warm up the engine; activate: subscribe and start inferring; deactivate:
stop; cleanup: free). With `autostart` (the default) it walks itself to active, for a plain `ros2 run`.

Threads: a multi-threaded executor files incoming frames (FrameInbox), each camera in its own callback group, and
serves parameters, lifecycle and timers in the default group. One inference thread takes the next batch (one frame
per camera), decodes, letterboxes, runs the engine once, post-processes into each camera's geometry and publishes.
So a slow pass never blocks discovery, parameters or diagnostics; in live mode a busy engine can only ever make
frames be replaced, never queue; in replay mode a full inbox blocks only that camera's callback, which leaves the
frames in DDS and so pushes back on the publisher.

Inputs: each camera's subscription follows its publishers' reliability (`cameras.<name>.qos: auto`). Frames that
never arrived are counted from DDS's message-lost status; gaps in the publishers' sequence numbers beyond those
are frames overwritten in the node's own reader queue (ros/transport.py, ros/monitor.py). The node's Fast DDS
profile (config/fastdds_node.xml) takes inputs over UDP into a large receive buffer; see ros/dds.py.
"""

from __future__ import annotations

import array
import math
import os
import statistics
import sys
import threading
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from hydranet_ros import __version__
from hydranet_ros.core.contract import ModelContract, ModelError, default_model_path
from hydranet_ros.core.geometry import Calibration, Intrinsics
from hydranet_ros.core.mounting import Mounting
from hydranet_ros.ros import dds
from hydranet_ros.ros import params as P
from hydranet_ros.ros.inbox import Frame, FrameInbox
from hydranet_ros.ros.monitor import ERROR, OK, WARN, CameraMonitor
from hydranet_ros.ros.mounting import MountingSource
from hydranet_ros.ros.outputs import occupancy_grid
from hydranet_ros.ros.process import ros_process
from hydranet_ros.ros.publishers import OUTPUT_QOS, CameraPublishers
from hydranet_ros.ros.transport import BEST_EFFORT, RELIABLE, SequenceGaps, input_reliability
from hydranet_ros.runtime.engines import Engine, load_engine
from hydranet_ros.runtime.ground import GridSpec, GroundGrid, fuse_grids, ground_contacts
from hydranet_ros.runtime.lanes import lane_lines
from hydranet_ros.runtime.pipeline import EngineFailure, Perception
from hydranet_ros.runtime.postprocess import FrameResult
from hydranet_ros.runtime.road_scale import DepthAnchor

_ROS_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
    list: Parameter.Type.STRING_ARRAY,
}
_LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}
LOG_THROTTLE_S = 5.0


# Live mode keeps the last few frames in DDS, not one: the inbox keeps only the newest anyway (an older one is
# counted as superseded, "busy"), and a short stall of the executor then costs no frame. As many as the node's
# DDS profile lets a reader hold (config/fastdds_node.xml).
LIVE_DEPTH = 4
QOS_CHECK_PERIOD_S = 0.5  # how often `auto` cameras compare their subscription with the publishers
PROBE_AFTER_S = 2.0  # live mode: run a pass anyway after this long without one, to re-measure the pass time


def input_qos(mode: str, reliability: str) -> QoSProfile:
    """live: the last LIVE_DEPTH frames; replay: keep all (bounded by the node's DDS profile: back-pressure)."""
    rel = ReliabilityPolicy.RELIABLE if reliability == RELIABLE else ReliabilityPolicy.BEST_EFFORT
    if mode == "replay":
        return QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=rel)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=LIVE_DEPTH, reliability=rel)


# Best effort matches reliable and best-effort camera drivers alike; calibration changes rarely, so only the newest
# matters, but a few are kept so that each one is looked at (a rejected one is counted).
CAMERA_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=4, reliability=ReliabilityPolicy.BEST_EFFORT)


def mounting_of(pose: Any) -> Mounting | None:
    """The `mounting` parameter (already validated) as a Mounting, None where it is empty: parsed once, not per
    frame."""
    return Mounting.from_pose(pose) if pose is not None and len(pose) else None


class Camera:
    """One camera: its parameters, latest calibration, monitor and output publishers."""

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        self.name = name
        self.image_topic: str = values[f"cameras.{name}.image_topic"]
        self.compressed: bool = values[f"cameras.{name}.compressed"]
        self.info_topic = P.camera_info_topic(values[f"cameras.{name}.camera_info_topic"], self.image_topic,
                                              self.compressed)
        self.qos_setting: str = values[f"cameras.{name}.qos"]
        self.frame_id: str = values[f"cameras.{name}.frame_id"]
        self.fallback_fx: float = values[f"cameras.{name}.fallback_fx"]
        self.mounting_param = mounting_of(values[f"cameras.{name}.mounting"])  # checked by params.resolve
        self.anchor = DepthAnchor()  # this camera's running road scale
        self.ground_grid = GroundGrid()  # its grid cells' pixels, for the current mounting
        self.monitor = CameraMonitor(name, self.image_topic)
        self.info: CameraInfo | None = None
        self.pubs: CameraPublishers | None = None
        self.group = MutuallyExclusiveCallbackGroup()  # this camera's frames; a blocked put stalls only it
        self.subscription: Any = None
        self.info_subscription: Any = None
        self.reliability = ""
        self.gaps = SequenceGaps()

    def calibration(self) -> Calibration:
        """What the node knows of this camera's intrinsics: its camera_info (rescaled to each frame's size if it
        was calibrated at another resolution), else fallback_fx, else nothing (the pipeline then assumes the
        model's canonical focal length; diagnostics say so)."""
        info = self.info
        if info is not None:
            k = info.k
            return Calibration(Intrinsics(k[0], k[4], k[2], k[5]), (info.width, info.height))
        return Calibration(fallback_fx=self.fallback_fx)


class HydraNetNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("hydranet", **kwargs)
        self.values = self._declare_all()
        self.cameras = {name: Camera(name, self.values) for name in self.values["camera_names"]}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.engine: Engine | None = None
        self.perception: Perception | None = None
        self.contract: ModelContract | None = None
        self.engine_error = ""
        self.inbox: FrameInbox | None = None
        self.worker: threading.Thread | None = None
        self.qos_timer: Any = None
        self.mountings: MountingSource | None = None
        self.grid_pub: Any = None  # ~/drivable_grid: every camera's grid fused (several cameras)
        self.passes = 0
        self.batch_sizes: list[int] = []
        self.pass_times: deque[tuple[int, float]] = deque(maxlen=16)  # (batch size, s from decode to last publish)
        self.last_pass_end = time.monotonic()
        self._log_times: dict[str, float] = {}
        self.transport = transport_summary()
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # On the steady clock, not the node's: under use_sim_time a paused or finished replay stops /clock, and
        # diagnostics must still report (the last frames' latencies, "no frames for N s").
        self.diag_timer = self.create_timer(self.values["diagnostics_period_s"], self._publish_diagnostics,
                                            clock=Clock(clock_type=ClockType.STEADY_TIME))
        topics = ", ".join(f"{c.name}: {c.image_topic}" for c in self.cameras.values())
        self.get_logger().info(f"hydranet_node {__version__}: mode={self.values['mode']}, cameras [{topics}]")
        self.get_logger().info(f"transport: {self.transport}")

    # --- lifecycle ----------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        model = Path(self.values["model"]).expanduser() if self.values["model"] else default_model_path()
        cache = Path(self.values["engine_cache_dir"]).expanduser() if self.values["engine_cache_dir"] else None
        try:
            t0 = time.monotonic()
            self.engine = load_engine(
                model, providers=self.values["providers"], fp16=self.values["fp16"],
                engine_cache_dir=cache, threads=self.values["threads"],  # None: build-engine's default too
                warn=self.get_logger().warning,
            )
            self.contract = self.engine.contract
            self.engine.warmup(batch_sizes=sorted({1, self._pass_size()}))
            self.perception = Perception(self.engine, self.contract)
        except (ModelError, OSError, ValueError, RuntimeError) as exc:
            self.engine_error = str(exc)
            self.get_logger().error(f"cannot load the model: {exc}")
            self._free_engine()
            return TransitionCallbackReturn.FAILURE
        c = self.contract
        self.get_logger().info(
            f"model {c.name} ({c.path.name}, sha256 {c.sha256[:12]}) on {self.engine.description}, "
            f"input {c.input_width}x{c.input_height}, tasks {', '.join(t.name for t in c.tasks)}; "
            f"loaded and warmed up in {time.monotonic() - t0:.1f} s"
        )
        road_head = self.values["road_head"]
        for cam in self.cameras.values():
            cam.pubs = CameraPublishers(self, cam.name, cam.frame_id, c, self.values["score_threshold"], road_head,
                                        self.values["lane_head"])
        if len(self.cameras) > 1 and any(t.name == road_head for t in c.tasks):
            self.grid_pub = self.create_publisher(OccupancyGrid, "~/drivable_grid", OUTPUT_QOS)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        replay = self.values["mode"] == "replay"
        self.mountings = MountingSource(self)
        self.inbox = FrameInbox(list(self.cameras), self.values["mode"],
                                max_bytes=int(self.values["max_queue_mb"] * 1e6) if replay else None)
        for cam in self.cameras.values():
            # auto starts reliable: the first frames of a reliable camera or bag are then already repaired; a
            # best-effort publisher is matched within QOS_CHECK_PERIOD_S (a reliable reader does not match it).
            self._subscribe(cam, input_reliability(cam.qos_setting, []))
            if cam.info_topic:
                cam.info_subscription = self.create_subscription(
                    CameraInfo, cam.info_topic, partial(self._on_camera_info, cam), CAMERA_INFO_QOS)
        if any(c.qos_setting == "auto" for c in self.cameras.values()):
            self.qos_timer = self.create_timer(QOS_CHECK_PERIOD_S, self._follow_publishers,
                                               clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.worker = threading.Thread(target=self._infer_loop, name="hydranet-infer", daemon=True)
        self.worker.start()
        self.get_logger().info("active: subscribed to " + ", ".join(c.image_topic for c in self.cameras.values()))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inference()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for cam in self.cameras.values():
            if cam.pubs is not None:
                cam.pubs.destroy()
            cam.pubs = None
        if self.grid_pub is not None:
            self.destroy_publisher(self.grid_pub)
            self.grid_pub = None
        self._free_engine()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inference()
        self._free_engine()
        return super().on_shutdown(state)

    def _stop_inference(self) -> None:
        if self.inbox is not None:
            self.inbox.close()  # first: it releases a camera callback waiting for room (replay)
        if self.qos_timer is not None:
            self.destroy_timer(self.qos_timer)
            self.qos_timer = None
        for cam in self.cameras.values():
            for sub in (cam.subscription, cam.info_subscription):
                if sub is not None:
                    self.destroy_subscription(sub)
            cam.subscription = cam.info_subscription = None
        if self.worker is not None:
            self.worker.join(timeout=30.0)
        self.worker = self.inbox = None
        if self.mountings is not None:
            self.mountings.destroy()
            self.mountings = None

    # --- inputs: subscriptions that follow the publishers ------------------------------------------------------
    def _subscribe(self, cam: Camera, reliability: str) -> None:
        """(Re)subscribe `cam` with `reliability`. The old subscription goes first: two at once would hand over
        the same frames twice. A frame sent in between reached neither, and shows as a gap in the publisher's
        sequence numbers (counted with the overruns: DDS never knew it was meant for us)."""
        if cam.subscription is not None:
            self.destroy_subscription(cam.subscription)
        msg_type = CompressedImage if cam.compressed else Image
        events = SubscriptionEventCallbacks(incompatible_qos=partial(self._on_incompatible_publisher, cam),
                                            message_lost=partial(self._on_message_lost, cam))
        cam.subscription = self.create_subscription(
            msg_type, cam.image_topic, partial(self._on_image, cam), input_qos(self.values["mode"], reliability),
            callback_group=cam.group, event_callbacks=events)
        cam.reliability = reliability
        cam.monitor.topic = cam.subscription.topic_name  # remapping and namespace applied
        cam.monitor.input_qos = reliability
        cam.monitor.loss_hint = loss_hint(reliability, self.values["mode"])

    def _on_message_lost(self, cam: Camera, event: Any) -> None:
        """DDS counts the samples that will never reach this reader: lost on the way (best effort), or withdrawn by
        a publisher's history before delivery (reliable, keep last)."""
        if event.total_count_change > 0:
            cam.monitor.lost(event.total_count_change)
            self._throttled_warn(f"lost-{cam.name}", f"camera {cam.name}: {event.total_count_change} frame(s) lost "
                                 f"before reaching the node ({event.total_count} on this subscription): "
                                 f"{cam.monitor.loss_hint}")

    def _on_incompatible_publisher(self, cam: Camera, event: Any) -> None:
        """A publisher our subscription cannot match (rclpy would log a generic warning). With qos auto that is
        a best-effort camera seen while subscribed reliable: _follow_publishers switches within a period."""
        if cam.qos_setting == "auto":
            return
        policy = getattr(getattr(event, "last_policy_kind", None), "name", "?")
        self._throttled_warn(
            f"qos-{cam.name}", f"camera {cam.name}: a publisher on {cam.monitor.topic} offers a QoS (policy {policy}) "
            f"that a subscription with cameras.{cam.name}.qos = {cam.qos_setting} cannot receive; with "
            "cameras.<name>.qos auto the node follows the publishers", period=60.0)

    def _follow_publishers(self) -> None:
        """auto cameras: reliable while every publisher is, best effort as soon as one is not; unchanged while there
        is none."""
        for cam in self.cameras.values():
            if cam.qos_setting != "auto" or cam.subscription is None:
                continue
            # The subscription's own name: remapping and namespaces already applied.
            infos = self.get_publishers_info_by_topic(cam.subscription.topic_name)
            if not infos:
                continue  # keep what matched the last publishers: a camera driver restarting comes back the same
            offered = [BEST_EFFORT if i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT else RELIABLE
                       for i in infos]
            wanted = input_reliability("auto", offered)
            if wanted != cam.reliability:
                self.get_logger().info(
                    f"camera {cam.name}: {len(infos)} publisher(s) on {cam.subscription.topic_name} "
                    f"({', '.join(offered) or 'none'}): subscribing {wanted}")
                self._subscribe(cam, wanted)

    def _free_engine(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.engine = None
        self.perception = None

    # --- parameters ---------------------------------------------------------------------------------
    def _declare_all(self) -> dict[str, Any]:
        """Declare every parameter with a descriptor and the value params.resolve gives: the one function that
        `hydranet params --file` runs too, so both accept exactly the same files. The values come from the params
        file(s) and -p, config/hydranet.yaml first; a camera's missing keys from camera_defaults.*."""
        # rclpy has no public accessor for the overrides it parsed; it also silently ignores overrides for names
        # nobody declares, which is why resolve() looks at all of them (a typo must not pass unnoticed).
        given = {n: p.value for n, p in getattr(self, "_parameter_overrides", {}).items()}
        values, problems = P.resolve(given, ignorable=set(P.load_params_file(P.default_config_path())))
        if problems:
            raise P.ParameterError("invalid parameters:\n  " + "\n  ".join(problems))
        schema = {p.name: p for p in P.expand(values["camera_names"])}
        for name, value in values.items():
            self._declare(schema[name], value)
        return values

    def _declare(self, p: P.Param, value: Any) -> None:
        kind = Parameter.Type.DOUBLE_ARRAY if p.type is list and p.item is float else _ROS_TYPES[p.type]
        descriptor = ParameterDescriptor(name=p.name, type=kind.value, description=p.description,
                                         read_only=p.read_only)
        if value == [] and kind is Parameter.Type.DOUBLE_ARRAY:
            # rclpy types a bare [] a byte array: declare the type first, then set the typed empty array.
            self.declare_parameter(p.name, kind, descriptor, ignore_override=True)
            self.set_parameters([Parameter(p.name, kind, [])])
            return
        # ignore_override: the value is the override already, resolved and type-coerced (an integer given for a
        # float parameter is accepted, as `hydranet params` accepts it).
        self.declare_parameter(p.name, value, descriptor, ignore_override=True)

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        schema = {p.name: p for p in P.expand(self.values["camera_names"])}
        # rclpy hands numeric arrays set at run time (ros2 param set, the parameter service) over as array.array.
        values = {c.name: list(c.value) if isinstance(c.value, array.array) else c.value for c in changes}
        for name, value in values.items():
            p = schema.get(name)
            if p is not None and (why := p.validate(value)):
                return SetParametersResult(successful=False, reason=why)
        for name, value in values.items():
            if name in schema:  # a plain dict store: the inference thread reads single keys
                self.values[name] = value
                camera, _, key = name.removeprefix("cameras.").rpartition(".")
                if key == "fallback_fx" and camera in getattr(self, "cameras", {}):
                    self.cameras[camera].fallback_fx = float(value)
                if key == "mounting" and camera in getattr(self, "cameras", {}):
                    self.cameras[camera].mounting_param = mounting_of(value)
        return SetParametersResult(successful=True)

    # --- inputs (executor thread) -------------------------------------------------------------------
    def _on_image(self, cam: Camera, msg: Image | CompressedImage, info: dict[str, Any]) -> None:
        now = time.monotonic()
        # The age of a frame counts from its reception by DDS (the middleware's system-clock stamp), which can be
        # earlier than this callback when the executor was busy.
        rx_ns = info.get("received_timestamp") or 0
        received = now - max(0.0, (time.time_ns() - rx_ns) / 1e9) if rx_ns > 0 else now
        seq = info.get("publication_sequence_number") or 0
        if seq > 0 and (missing := cam.gaps.observe(seq)):
            cam.monitor.gap(missing)
        cam.monitor.received()
        inbox = self.inbox
        if inbox is not None and inbox.put(cam.name, msg, received, len(msg.data)):
            cam.monitor.dropped("busy")

    def _on_camera_info(self, cam: Camera, msg: CameraInfo) -> None:
        k = msg.k
        if not all(math.isfinite(v) for v in (*k, *msg.p)) or k[0] <= 0 or k[4] <= 0:
            why = f"camera_info on {cam.info_topic} is unusable (fx={k[0]}, fy={k[4]}, non-finite or <= 0); ignored"
            cam.monitor.info_rejected(why)
            self._throttled_warn(f"info-{cam.name}", why)
            return
        cam.info = msg

    # --- inference (worker thread) ------------------------------------------------------------------
    def _infer_loop(self) -> None:
        inbox = self.inbox
        while inbox is not None and not inbox.closed:
            frames = inbox.take(timeout=0.2, gather=self.values["batch_window_ms"] / 1000.0)
            size = self._pass_size()
            for batch in (frames[i:i + size] for i in range(0, len(frames), size)):
                try:
                    self._process(batch)
                except Exception as exc:  # noqa: BLE001 - the loop must survive anything a frame can cause
                    for f in batch:
                        self.cameras[f.camera].monitor.engine_failed(f"{type(exc).__name__}: {exc}")
                    self._throttled_warn("pass", f"inference pass failed: {type(exc).__name__}: {exc}", error=True)

    def _pass_size(self) -> int:
        """Frames per pass at most: max_batch, or every camera's (0)."""
        return self.values["max_batch"] or max(1, len(self.cameras))

    def _process(self, frames: list[Frame]) -> None:
        """One pass. Live mode bounds each result's age at publication (from the frame's reception) by
        max_age_ms: a frame that would miss it, by the time the pass is predicted to take, is dropped before the
        pass; a result that missed it anyway is dropped at publication. Both are counted as stale."""
        assert self.perception is not None
        live = self.values["mode"] == "live"
        max_age = self.values["max_age_ms"] / 1000.0
        if live:
            frames = self._drop_frames_that_cannot_make_it(frames, max_age)
        if not frames:
            return
        t_pass = time.monotonic()
        cams = [self.cameras[f.camera] for f in frames]
        try:
            p = self.perception.process([f.msg for f in frames], [cam.calibration() for cam in cams],
                                        self.values["score_threshold"], self.values["dense_output"])
        except EngineFailure as exc:
            self.engine_error = str(exc)
            raise
        if p.batch_size:
            self.engine_error = ""
            self.passes += 1
            self.batch_sizes.append(p.batch_size)
        clock = self.get_clock()
        grids: list[tuple[Any, Any]] = []  # (stamp, grid) of this pass's published frames
        grid = (self.values["base_frame"], self._grid_spec())  # the parameters as they are for this pass
        fuse = self.grid_pub is not None and self.grid_pub.get_subscription_count() > 0  # asked once per pass
        for f, cam, frame in zip(frames, cams, p.frames, strict=True):
            if frame.error is not None:
                why = f"{cam.image_topic}: {frame.error}"
                cam.monitor.dropped("malformed", why)
                self._throttled_warn(f"decode-{cam.name}-{frame.error.reason}", f"dropped a frame from {why}")
                continue
            assert frame.result is not None and frame.rgb is not None
            frame_id = cam.frame_id or f.msg.header.frame_id
            t_ground = time.monotonic()
            self._on_the_ground(cam, frame_id, frame.result, grid[1], fuse)  # post-processing needing the mounting
            for stage, ms in (("decode", frame.decode_ms), ("preprocess", p.preprocess_ms), ("infer", p.infer_ms),
                              ("postprocess", p.postprocess_ms + _ms(t_ground))):
                cam.monitor.stage(stage, ms)
            self._note_focal_source(cam, frame.focal_source)
            t0 = time.monotonic()
            age = t0 - f.received
            if live and age > max_age:
                cam.monitor.dropped("stale")
                continue
            stamp = Time.from_msg(f.msg.header.stamp, clock_type=clock.clock_type)
            stamp_age_ms = (clock.now() - stamp).nanoseconds / 1e6
            # The input's header on every output (stamp unchanged; frame_id overridable).
            header = Header(stamp=f.msg.header.stamp, frame_id=frame_id)
            assert cam.pubs is not None
            cam.pubs.publish(header, frame.rgb, frame.result, cam.info, self.values["points_stride"], grid)
            if frame.result.grid is not None:
                grids.append((f.msg.header.stamp, frame.result.grid))
            cam.monitor.stage("publish", _ms(t0))
            cam.monitor.published(age * 1000.0, stamp_age_ms)
        if grids and fuse:
            stamp = max((g[0] for g in grids), key=lambda t: (t.sec, t.nanosec))
            self.grid_pub.publish(occupancy_grid(Header(stamp=stamp, frame_id=grid[0]),
                                                 fuse_grids([g for _, g in grids]), grid[1]))
        if p.batch_size:
            self.last_pass_end = time.monotonic()
            self.pass_times.append((p.batch_size, self.last_pass_end - t_pass))

    def _grid_spec(self) -> GridSpec:
        x0, x1, y0, y1 = self.values["grid_bounds_m"]
        return GridSpec(self.values["grid_resolution_m"], x0, x1, y0, y1, self.values["grid_max_range_m"])

    def _on_the_ground(self, cam: Camera, frame_id: str, result: FrameResult, spec: GridSpec, fuse: bool) -> None:
        """Where the camera's mounting is known (TF, else the parameter): depth_scale road/auto scales this frame's
        depth by the road's, boxes standing clear get their ground-contact distance, and the drivable grid and the
        lane polylines are made while someone listens (`fuse`: to the fused grid). Without one depth keeps the
        network's scale, with a warning that says why."""
        mounting, why = None, "depth_scale is network"
        if self.mountings is not None:
            mounting, why = self.mountings.mounting(self.values["base_frame"], frame_id, cam.mounting_param,
                                                    publish=self.values["publish_mounting_tf"])
            cam.monitor.mounting_on_tf_static = self.mountings.published(frame_id)
        cam.monitor.mounting = mounting
        if self.values["depth_scale"] == "network":
            cam.monitor.depth_scale = (1.0, "network", "depth_scale is network")
        elif mounting is None:
            cam.monitor.depth_scale = (1.0, "network", why)
            self._throttled_warn(f"mounting-{cam.name}", f"camera {cam.name}: {why}: depth keeps the network's scale "
                                 f"(publish the camera's TF, or set cameras.{cam.name}.mounting)", period=60.0)
        else:
            est = cam.anchor.apply(result, mounting, self.values["road_head"])
            cam.monitor.depth_scale = (est.scale, est.source, est.reason)
        if mounting is None:
            return
        ground_contacts(result, mounting)
        road = result.masks.get(self.values["road_head"])
        if road is not None and cam.pubs is not None and (cam.pubs.wanted("drivable_grid") or fuse):
            result.grid = cam.ground_grid.grid(road > 0, result.dense_intrinsics, mounting, spec)
        lanes = result.masks.get(self.values["lane_head"])
        if lanes is not None and cam.pubs is not None and cam.pubs.wanted("lane_polylines"):
            result.lanes = lane_lines(lanes > 0, result.dense_intrinsics, mounting)

    def _note_focal_source(self, cam: Camera, source: str) -> None:
        cam.monitor.focal_source = source
        if source == "canonical":
            assert self.contract is not None
            why = "no camera_info yet" if cam.info_topic else "no camera_info_topic"
            self._throttled_warn(
                f"fx-{cam.name}", f"camera {cam.name}: {why} and fallback_fx is 0: metric depth assumes the "
                f"model's canonical focal length ({self.contract.canonical_fx:.1f} px at the network's resolution), "
                "so it is off by the ratio of the real focal length to that", period=60.0)

    def predicted_pass_s(self, batch_size: int) -> float:
        """The median of the recent passes of this batch size (of any, if none), decode to last publish; 0 before
        the first."""
        passes = list(self.pass_times)  # a copy: the inference thread appends while diagnostics read
        same = [t for n, t in passes if n == batch_size]
        recent = same or [t for _, t in passes]
        return statistics.median(recent) if recent else 0.0

    def _drop_frames_that_cannot_make_it(self, frames: list[Frame], max_age: float) -> list[Frame]:
        """Live mode, before a pass: the frames whose results could still be published within max_age. After
        PROBE_AFTER_S without a pass the prediction is not trusted and a pass runs anyway (so that a prediction
        spoilt by one slow pass cannot stop the node for good); its results still face the publication check."""
        now = time.monotonic()
        probe = now - self.last_pass_end > PROBE_AFTER_S
        predicted = self.predicted_pass_s(len(frames))
        kept = []
        for f in frames:
            if now - f.received + (0.0 if probe else predicted) > max_age:
                cam = self.cameras[f.camera]
                cam.monitor.dropped("stale")
                if predicted > max_age:
                    cam.monitor.behind_hint = (
                        f"a pass of {len(frames)} frame(s) takes about {predicted * 1000:.0f} ms, longer than "
                        f"max_age_ms: raise max_age_ms, or lower the load (fewer cameras, a smaller model, a GPU)")
                else:
                    cam.monitor.behind_hint = ""
            else:
                kept.append(f)
        return kept

    def _throttled_warn(self, key: str, text: str, error: bool = False, period: float = LOG_THROTTLE_S) -> None:
        """At most one line per key every `period` s: a camera sending garbage at 30 Hz must not flood the log."""
        now = time.monotonic()
        if now - self._log_times.get(key, -math.inf) >= period:
            self._log_times[key] = now
            (self.get_logger().error if error else self.get_logger().warning)(text)

    # --- diagnostics --------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status.append(self._engine_status())
        active = self.worker is not None
        for cam in self.cameras.values():
            live = self.values["mode"] == "live"
            level, message, values = cam.monitor.report(self.values["max_age_ms"] if live else None)
            if not active:
                level, message = WARN, "inactive (lifecycle): not subscribed"
            st = DiagnosticStatus(level=_LEVELS[level], name=f"hydranet: camera {cam.name}", hardware_id=cam.name,
                                  message=message, values=[KeyValue(key=k, value=v) for k, v in values])
            array.status.append(st)
        self.diag_pub.publish(array)

    def _engine_status(self) -> DiagnosticStatus:
        st = DiagnosticStatus(name="hydranet: engine", hardware_id="hydranet")
        sizes, self.batch_sizes = self.batch_sizes, []
        if self.engine is None:
            st.level = DiagnosticStatus.ERROR if self.engine_error else DiagnosticStatus.WARN
            st.message = f"engine failure: {self.engine_error}" if self.engine_error else "not configured"
        elif self.engine_error:
            st.level, st.message = DiagnosticStatus.ERROR, f"engine failure: {self.engine_error}"
        else:
            st.level, st.message = DiagnosticStatus.OK, self.engine.description
        c = self.contract
        st.values = [
            KeyValue(key="mode", value=self.values["mode"]),
            KeyValue(key="model", value=f"{c.name} {c.path.name}" if c else ""),
            KeyValue(key="model_sha256", value=c.sha256 if c else ""),
            KeyValue(key="engine", value=self.engine.description if self.engine else ""),
            KeyValue(key="passes_total", value=str(self.passes)),
            KeyValue(key="mean_batch_size", value=f"{np.mean(sizes):.2f}" if sizes else "n/a"),
            KeyValue(key="max_batch_size", value=str(max(sizes)) if sizes else "n/a"),
            KeyValue(key="queued_frames", value=str(self.inbox.pending()) if self.inbox else "0"),
            KeyValue(key="queued_mb", value=f"{self.inbox.pending_bytes() / 1e6:.1f}" if self.inbox else "0.0"),
            KeyValue(key="pass_ms", value=f"{self.predicted_pass_s(max(sizes, default=1)) * 1000:.1f}"
                     if self.pass_times else "n/a"),
            KeyValue(key="transport", value=self.transport),
            KeyValue(key="base_frame", value=self.values["base_frame"]),
            KeyValue(key="tf_transforms_rejected", value=str(self.mountings.rejected if self.mountings else 0)),
        ]
        return st


def _ms(t0: float) -> float:
    return (time.monotonic() - t0) * 1000.0


def transport_summary() -> str:
    """One line on how frames reach the node: the Fast DDS profile in effect and the UDP receive buffer."""
    profile = os.environ.get(dds.PROFILE_ENV, "")
    rmem = dds.udp_receive_buffer_limit()
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return f"RMW {os.environ['RMW_IMPLEMENTATION']}: hydranet's Fast DDS profile does not apply"
    if not dds.is_node_profile(profile):
        return (f"Fast DDS profile {profile or '(none)'} chosen by FASTRTPS_DEFAULT_PROFILES_FILE: hydranet's "
                "(config/fastdds_node.xml: inputs over UDP, bounded reader history) is not applied")
    granted = min(dds.NODE_RECEIVE_BUFFER, rmem) if rmem else dds.NODE_RECEIVE_BUFFER
    line = (f"config/fastdds_node.xml: inputs over UDP with a {granted / 2**20:.1f} MiB receive buffer, outputs "
            "through 32 MiB shared memory")
    if rmem is not None and rmem < dds.NODE_RECEIVE_BUFFER:
        line += (f" (net.core.rmem_max {rmem / 2**20:.1f} MiB caps the buffer; best-effort cameras with large "
                 "frames need more: sysctl -w net.core.rmem_max=33554432)")
    return line


def loss_hint(reliability: str, mode: str) -> str:
    """What a user can do when frames of a camera are lost before they reach the node."""
    if reliability == BEST_EFFORT:
        rmem = dds.udp_receive_buffer_limit()
        rmem_text = f" (now {rmem / 2**20:.1f} MiB)" if rmem else ""
        return ("the camera publishes best effort, so a lost fragment loses its frame: publish reliable (the "
                "node then subscribes reliable and fragments are repaired), or raise net.core.rmem_max"
                f"{rmem_text} to 32 MiB; README, 'Transport'")
    advice = ("in replay mode the node takes frames at its own pace: publish keep-all (as `hydranet replay` and "
              "`ros2 bag play` do) or with a deeper history") if mode == "replay" else (
        "its history is shorter than delivery takes: give it a deeper history")
    return ("the publisher's history overwrote them before they were delivered (a reliable keep-last publisher "
            f"drops what is not yet acknowledged); {advice}")


def with_default_params(args: list[str]) -> list[str]:
    """Put the package's config/hydranet.yaml first, so the user's own files and -p override it."""
    default = ["--ros-args", "--params-file", str(P.default_config_path())]
    if "--ros-args" in args:
        i = args.index("--ros-args")
        return args[:i] + default + args[i:]
    return args + default


def spin_until(node: LifecycleNode, stop: threading.Event) -> None:
    """Spin until `stop` is set (SIGINT or SIGTERM, see ros/process.py) or the context shuts down."""
    # One thread per camera (a replay camera's callback may wait for room in the inbox) and two for the rest.
    cameras = len(getattr(node, "cameras", ()))
    executor = MultiThreadedExecutor(num_threads=cameras + 2, context=node.context)
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok(context=node.context):
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()


def main(args: list[str] | None = None) -> int:
    argv = with_default_params(list(sys.argv if args is None else args))
    with ros_process(dds.use_node_profile, argv) as stop:
        node = None
        try:
            node = HydraNetNode()
            if node.values["autostart"]:
                if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                    print(f"hydranet_node: configure failed: {node.engine_error}", file=sys.stderr)
                    return 1
                node.trigger_activate()
            spin_until(node, stop)
        except P.ParameterError as exc:
            print(f"hydranet_node: {exc}", file=sys.stderr)
            return 2
        except ExternalShutdownException:
            pass
        finally:
            if node is not None:
                node._stop_inference()
                node._free_engine()
                node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
