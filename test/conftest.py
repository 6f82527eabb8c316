"""Shared test harness.

Every ROS test goes through the `ros` fixture: loopback-only discovery, a fresh ROS_DOMAIN_ID for the run, a
temporary ROS_LOG_DIR, helpers to start a node in its own process and to wait for discovery. Nothing here
fakes ROS: the processes talk over real Fast DDS.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from diagnostic_msgs.msg import DiagnosticStatus

REPO = Path(__file__).resolve().parents[1]
SHARED_ASSETS = REPO.parent / "shared" / "assets"
SAMPLES = REPO / "hydranet_ros" / "samples"
NODE = [str(Path(sys.executable).parent / "hydranet_node")]  # the console script, as `ros2 run` would
CAMERA_RIG = REPO / "test" / "procs" / "camera.py"
IMAGE = str(SAMPLES / "project_video_0750.jpg")  # 1280x720
INTRINSICS = str(SAMPLES / "udacity_camera_intrinsics.json")
DISCOVERY_TIMEOUT_S = 10.0  # discovery takes < 50 ms usually, but 1.8-3.2 s in 1 run of 4-8 here

# Fast DDS can use domain ids 0-232; keep clear of 0 (everyone's default) and of the top end.
_DOMAIN_RANGE = (1, 200)


def pytest_configure(config: pytest.Config) -> None:
    # One domain for the whole run, chosen before any test imports rclpy; a second, different one for
    # isolation tests. Random, so that two runs on one machine do not hear each other.
    rng = random.Random()
    domain = rng.randint(*_DOMAIN_RANGE)
    other = rng.choice([d for d in range(*_DOMAIN_RANGE) if d != domain])
    config.ros_domain_ids = (domain, other)  # type: ignore[attr-defined]


def unavailable(reason: str, in_ci: str | None = None) -> NoReturn:
    """Skip a test that needs what a fresh clone lacks (../shared, the tools set-up installs from it), saying
    why; in CI (CI=true), which has all of it, fail instead (with `in_ci`, else the same reason)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(in_ci or reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_assets() -> Path:
    """../shared/assets, or skip with the reason. In CI (CI=true) its absence is an error, not a skip."""
    if SHARED_ASSETS.is_dir():
        return SHARED_ASSETS
    unavailable(f"needs the development assets in {SHARED_ASSETS} (not part of a fresh clone)",
                f"CI must run with ../shared beside the repo; {SHARED_ASSETS} is missing")


class RosProcess:
    """A child process (a node, a publisher script) with the test run's ROS environment."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, group: bool = False) -> None:
        """`group`: the process leads its own process group and stop() signals the whole group, as Ctrl-C in a
        terminal does (`ros2 run` leaves the signal to its child, which it expects to get it too)."""
        self.argv = argv
        self.log_path = log_path
        self.group = group
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=group)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig) if self.group else self.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (a clean rclpy shutdown), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self._signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(5)
        elif self.group:  # the leader is gone; what it started may not be
            self._signal(signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


class RosEnv:
    """The ROS environment of one test run, and helpers to use it."""

    def __init__(self, domain_id: int, other_domain_id: int, log_dir: Path, user_profile: str | None) -> None:
        self.domain_id = domain_id
        self.other_domain_id = other_domain_id
        self.log_dir = log_dir
        self.user_profile = user_profile  # FASTRTPS_DEFAULT_PROFILES_FILE as the run found it
        self.processes: list[RosProcess] = []

    def env(self, domain_id: int | None = None) -> dict[str, str]:
        env = dict(os.environ)
        # Each process of ours picks its own Fast DDS profile (the node's differs from the tools'): the one this
        # test process took must not leak into them.
        if self.user_profile is None:
            env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
        env.update(
            ROS_DOMAIN_ID=str(self.domain_id if domain_id is None else domain_id),
            ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
            ROS_LOG_DIR=str(self.log_dir),
            PYTHONUNBUFFERED="1",
        )
        env.pop("ROS_STATIC_PEERS", None)
        return env

    def start(self, argv: list[str], name: str, domain_id: int | None = None) -> RosProcess:
        """Start `argv` in its own process, in this run's domain (or `domain_id`)."""
        proc = RosProcess(argv, self.env(domain_id), self.log_dir / f"{name}.{len(self.processes)}.out")
        self.processes.append(proc)
        return proc

    def start_python(self, script: Path | str, *args: str, name: str, domain_id: int | None = None) -> RosProcess:
        return self.start([sys.executable, str(script), *args], name, domain_id)

    def stop_all(self) -> None:
        for p in self.processes:
            p.stop()


@pytest.fixture(scope="session")
def ros_session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RosEnv]:
    domain, other = request.config.ros_domain_ids  # type: ignore[attr-defined]
    log_dir = tmp_path_factory.mktemp("ros_log")
    # The test process itself joins the same environment before rclpy reads it.
    keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR", "FASTRTPS_DEFAULT_PROFILES_FILE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(log_dir)
    )
    from hydranet_ros.ros.dds import use_shm_profile

    use_shm_profile()  # as every process of ours does
    yield RosEnv(domain, other, log_dir, saved["FASTRTPS_DEFAULT_PROFILES_FILE"])
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def ros(ros_session: RosEnv) -> Iterator[RosEnv]:
    """The run's ROS environment; processes started through it are stopped after the test."""
    yield ros_session
    ros_session.stop_all()
    ros_session.processes.clear()


@pytest.fixture
def rclpy_node(ros: RosEnv) -> Iterator:
    """An rclpy node in the test process, in its own context, on the run's domain."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=ros.domain_id)
    node = rclpy.create_node(f"test_{os.getpid()}", context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def spin_until(node, predicate: Callable[[], bool], timeout: float,
               what: str | Callable[[], str] = "condition") -> None:
    """Spin `node` until `predicate()` holds; fail with `what` after `timeout` seconds (a callable is called
    then, so that the message can show the state at the timeout)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    try:
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.remove_node(node)
        executor.shutdown()
    assert rclpy.ok(context=node.context)


def wait_for_publishers(node, topic: str, count: int = 1, timeout: float = DISCOVERY_TIMEOUT_S) -> None:
    """Wait (at least the discovery timeout) until `topic` has `count` publishers in the graph."""
    spin_until(node, lambda: node.count_publishers(topic) >= count, timeout, f"{count} publisher(s) on {topic}")


def wait_for_subscribers(node, topic: str, count: int = 1, timeout: float = DISCOVERY_TIMEOUT_S) -> None:
    spin_until(node, lambda: node.count_subscribers(topic) >= count, timeout, f"{count} subscriber(s) on {topic}")


TEST_MODEL_SIZE = "320x192"  # the default spec at a smaller input: the same graph, 4x fewer pixels, CPU-friendly


@pytest.fixture(scope="session")
def hydranet_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default spec exported to ONNX (+ card) with its real ImageNet backbone and untrained heads.

    Untrained heads give arbitrary but deterministic outputs of the right kinds and shapes, which is what the
    node's plumbing tests need; the trained default model (models/) is checked for sense elsewhere."""
    from hydranet_ros.model.export import export_onnx
    from hydranet_ros.model.spec import load_spec

    spec = load_spec(REPO / "config" / "models" / "hydranet_effl0_road.yaml").with_input_size(TEST_MODEL_SIZE)
    out = tmp_path_factory.mktemp("model") / "hydranet_test.onnx"
    import torch

    torch.manual_seed(0)
    return export_onnx(spec, out)


def reliable_qos(depth: int = 50):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)


RELIABLE = reliable_qos()


def start_node(ros: RosEnv, model: Path, cameras: dict[str, dict], name: str, **params) -> RosProcess:
    """hydranet_node in its own process with `cameras` ({name: {image_topic, compressed, camera_info_topic, qos,
    fallback_fx, frame_id}}: what differs from camera_defaults; the topic is /camera/<name>/image_raw and there is
    no camera_info unless said) and other parameters."""
    args = ["-p", f"model:={model}", "-p", f"camera_names:={json.dumps(list(cameras))}"]
    for cam, cfg in cameras.items():
        full = {"image_topic": f"/camera/{cam}/image_raw", "camera_info_topic": "", **cfg}
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

    def latest(self, camera: str) -> dict[str, str]:
        """The key/values of the camera's newest status ({} before the first)."""
        st = self.camera_status(camera)
        return values(st[-1]) if st else {}

    def engine(self) -> list[dict[str, str]]:
        return [values(s) for a in self.got["/diagnostics"] for s in a.status if s.name == "hydranet: engine"]


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def rig_published(rig: RosProcess, timeout: float = 60.0) -> dict[str, int]:
    """Wait for a camera rig to finish; the number of messages it published per topic (its last line)."""
    rig.proc.wait(timeout)
    lines = [line for line in rig.output().splitlines() if line.startswith('{"published"')]
    assert lines, rig.output()
    return json.loads(lines[-1])["published"]


def start_rig(ros: RosEnv, name: str, **plan) -> RosProcess:
    """The camera rig (test/procs/camera.py) in its own process; `plan` as its docstring describes."""
    return ros.start_python(CAMERA_RIG, json.dumps(plan), name=name)


# --- training samples ---------------------------------------------------------------------------------------------

SIM_K = (554.2562584220408, 554.2562584220408, 320.0, 192.0)


def sim_sample(shared: Path, frame: str, with_boxes: bool = True):
    """A manifest sample of the synthetic set with every task of the default model, as the sim importer maps it."""
    from hydranet_ros.train.manifest import Sample

    sim = shared / "sim"
    labels = {
        "drivable_area": {"file": sim / "semantic" / f"{frame}.png", "map": {"1": 1, "2": 1}, "default": 0},
        "lane_lines": {"file": sim / "semantic" / f"{frame}.png", "map": {"2": 1}, "default": 0},
        "depth": {"file": sim / "depth" / f"{frame}.png"},
    }
    if with_boxes:
        boxes = json.loads((sim / "boxes" / f"{frame}.json").read_text())
        labels["detections"] = {"boxes": [[b["x1"], b["y1"], b["x2"], b["y2"], "vehicle"] for b in boxes]}
    return Sample(image=sim / "rgb" / f"{frame}.jpg", size=(640, 384), intrinsics=SIM_K, labels=labels)


