"""The launch files, the `ros2` command and the colcon path, for real.

ROS 2's own `ros2` command, launch and launch_ros (set-up installs them into the venv from
../shared/vendor/ros2-jazzy; a ROS 2 install has them) start each launch file the way a user does,
`ros2 launch hydranet_ros FILE ARG:=VALUE`, with nothing sourced: the package is found through the venv's ament
index. A camera rig and a /tf_static publisher in their own processes feed the node; the test subscribes to every
topic the launched node advertises, waits for a message on each and for /diagnostics, and reads the node's
parameters back with `ros2 param dump`. The only stand-in is rviz2 (it needs a display and is not in the pip
environment): a package named `rviz2` in a temporary prefix whose executable records the arguments it was given.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import (
    DISCOVERY_TIMEOUT_S,
    IMAGE,
    INTRINSICS,
    REPO,
    RosEnv,
    RosProcess,
    spin_until,
    start_rig,
    unavailable,
)
from hydranet_ros.ros.params import flatten, load_params_file

ROS2 = Path(sys.executable).parent / "ros2"
LAUNCH_FILES = sorted(p.name for p in (REPO / "launch").glob("*.launch.py"))
DEFAULTS = REPO / "config" / "hydranet.yaml"
RVIZ = REPO / "config" / "hydranet.rviz"
TF_STATIC = REPO / "test" / "procs" / "tf_static.py"
OPTICAL_IN_BODY = [-0.5, 0.5, -0.5, 0.5]  # camera body (x forward) -> optical frame (z forward), as URDFs state it
# Each camera's outputs with the shipped model: its four heads (+ depth's camera_info, the label topics), the
# overlay, the point cloud, 3-D boxes and markers, and with a mounting the grid and lane polylines.
CAMERA_OUTPUTS = ("drivable_area", "drivable_area/label_info", "lane_lines", "lane_lines/label_info", "depth",
                  "depth/camera_info", "detections", "detections/label_info", "detections_3d", "markers", "overlay",
                  "points", "drivable_grid", "lane_polylines")
OUTPUT_TIMEOUT_S = 90.0  # start-up (model load, discovery) plus the first passes of the shipped model on 2 cores


@pytest.fixture(scope="session")
def ros2_cli() -> Path:
    """The venv's `ros2` command, or skip with the reason (in CI its absence is an error)."""
    if ROS2.is_file():
        return ROS2
    unavailable(f"needs ROS 2's ros2 command and launch in the venv ({ROS2}): set-up installs them where "
                "../shared/vendor/ros2-jazzy is beside the repo; elsewhere they come with a ROS 2 install")


@pytest.fixture
def fake_rviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in `rviz2` package on AMENT_PREFIX_PATH (processes started after this see it); returns the file in
    which its executable writes its arguments, one per line, when launch starts it."""
    prefix, record = tmp_path / "rviz_prefix", tmp_path / "rviz2_argv.txt"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "rviz2").touch()
    exe = prefix / "lib" / "rviz2" / "rviz2"
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\nexec sleep 600\n")
    exe.chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join([str(prefix), os.environ.get("AMENT_PREFIX_PATH", "")]))
    return record


def ros2_launch(ros: RosEnv, name: str, *args: str) -> RosProcess:
    return ros.start([str(ROS2), "launch", "hydranet_ros", *args], name=name)


def param_dump(ros: RosEnv, node_name: str) -> dict:
    """`ros2 param dump NODE` (a real ros2cli run, no daemon), flattened to the node's dotted parameter names.
    Asked again while it says 'Node not found': without a daemon each call discovers the graph afresh, and
    discovery takes up to seconds here now and then."""
    deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
    while True:
        out = subprocess.run([str(ROS2), "param", "dump", node_name, "--no-daemon"], env=ros.env(),
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 0 or "Node not found" not in out.stderr or time.monotonic() > deadline:
            break
    assert out.returncode == 0, out.stderr
    (params,) = yaml.safe_load(out.stdout).values()
    return flatten(params["ros__parameters"])


def wait_for_every_output(node, launched: RosProcess, node_ns: str, cameras: list[str]) -> dict[str, list]:
    """Subscribe to every topic the launched node advertises under its name and wait for a message on each and
    on /diagnostics; returns what arrived per topic."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rosidl_runtime_py.utilities import get_message

    base = f"{node_ns.rstrip('/')}/hydranet"

    def advertised() -> dict[str, str]:
        ns = node_ns if node_ns.startswith("/") else f"/{node_ns}"
        if ("hydranet", ns) not in node.get_node_names_and_namespaces():
            return {}
        found = node.get_publisher_names_and_types_by_node("hydranet", ns)
        return {t: types[0] for t, types in found if t.startswith(f"{base}/") and not t.endswith("transition_event")}

    def ready() -> bool:
        assert launched.alive(), launched.output()
        topics = advertised()
        return all(f"{base}/{cam}/depth" in topics for cam in cameras)

    spin_until(node, ready, OUTPUT_TIMEOUT_S, lambda: f"the node's outputs for {cameras}: {launched.output()[-3000:]}")
    got: dict[str, list] = {"/diagnostics": []}
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(get_message("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics",
                             got["/diagnostics"].append, 10)
    # Discovery brings the node's endpoints one by one: wait for every output the shipped model has (the fused
    # grid with several cameras), then take whatever else the node advertises too.
    expected = {f"{base}/{cam}/{o}" for cam in cameras for o in CAMERA_OUTPUTS}
    expected |= {f"{base}/drivable_grid"} if len(cameras) > 1 else set()
    spin_until(node, lambda: expected <= set(advertised()), DISCOVERY_TIMEOUT_S,
               lambda: f"the node to advertise {sorted(expected - set(advertised()))}")
    for topic, type_name in sorted(advertised().items()):
        got[topic] = []
        node.create_subscription(get_message(type_name), topic, got[topic].append,
                                 latched if topic.endswith("label_info") else reliable)

    def state() -> str:
        latest = {s.name: {kv.key: kv.value for kv in s.values} for a in got["/diagnostics"] for s in a.status}
        return (f"a message on each of {({t: len(m) for t, m in got.items()})}; latest /diagnostics: {latest}; "
                f"launch output: {launched.output()[-3000:]}")

    spin_until(node, lambda: launched.alive() and all(got.values()), OUTPUT_TIMEOUT_S, state)
    return got


def spin_for(node, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    spin_until(node, lambda: time.monotonic() > deadline, seconds + 5.0, "")


def headers(msg) -> list:
    if hasattr(msg, "header"):
        return [msg.header]
    return [m.header for m in getattr(msg, "markers", [])]


def check_stamps_and_frames(got: dict[str, list], camera_frames: set[str], stamps: tuple[float, float]) -> None:
    """Every output carries its camera's header (frame and a stamp the rig published), the grids and lane lines
    base_link."""
    for topic, msgs in got.items():
        if topic == "/diagnostics" or topic.endswith("label_info"):
            continue
        for h in (h for m in msgs for h in headers(m)):
            frames = {"base_link"} if topic.endswith(("drivable_grid", "lane_polylines")) else camera_frames
            assert h.frame_id in frames, (topic, h.frame_id)
            t = h.stamp.sec + h.stamp.nanosec * 1e-9
            assert stamps[0] <= t <= stamps[1], (topic, t, stamps)


def tf_static(ros: RosEnv, cameras: dict[str, float]) -> RosProcess:
    """base_link -> camera_<name>_link (1.5 m up, yawed) -> camera_<name>_optical on /tf_static."""
    transforms = []
    for cam, yaw in cameras.items():
        transforms += [
            {"parent": "base_link", "child": f"camera_{cam}_link", "xyz": [1.0, 0.0, 1.5],
             "xyzw": [0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]},
            {"parent": f"camera_{cam}_link", "child": f"camera_{cam}_optical", "xyz": [0, 0, 0],
             "xyzw": OPTICAL_IN_BODY},
        ]
    return ros.start_python(TF_STATIC, json.dumps(transforms), name="tf_static")


@pytest.mark.usefixtures("ros2_cli")
def test_hydranet_launch_on_sim_time_in_a_namespace_with_a_mounting_parameter(ros, rclpy_node, tmp_path, fake_rviz):
    """The main launch file with every argument but rviz: a user's params_file (a camera with CameraInfo and a
    mounting), namespace and use_sim_time (a live camera on a bag's clock): every output flows, in the namespace,
    stamped with the camera's sim-time header; the grid and lane lines in base_link from the parameter mounting."""
    params = tmp_path / "front.yaml"
    params.write_text("/**:\n  ros__parameters:\n    cameras:\n      front:\n"
                      "        camera_info_topic: /camera/front/camera_info\n"
                      "        mounting: [1.0, 0.0, 1.4, 0.0, 0.02, 0.0]\n")
    launched = ros2_launch(ros, "launch_main", "hydranet.launch.py", f"params_file:={params}", "namespace:=ego",
                           "use_sim_time:=true")
    start_rig(ros, "rig_main", rate=4, count=0, clock=True, wait_for=["/camera/front/image_raw"], streams=[
        {"topic": "/camera/front/image_raw", "image": IMAGE, "info_topic": "/camera/front/camera_info",
         "intrinsics": INTRINSICS, "frame_id": "camera_front_optical"}])
    got = wait_for_every_output(rclpy_node, launched, "/ego", ["front"])
    assert {"/ego/hydranet/front/drivable_grid", "/ego/hydranet/front/lane_polylines",
            "/ego/hydranet/front/detections"} <= set(got)
    check_stamps_and_frames(got, {"camera_front_optical"}, (1000.0, 1000.0 + 3600))
    values = param_dump(ros, "/ego/hydranet")
    assert values["use_sim_time"] is True and values["mode"] == "live"
    assert values["cameras.front.mounting"] == [1.0, 0.0, 1.4, 0.0, 0.02, 0.0]
    # model "" is the package's default model, found through the ament index: the shipped file, by its hash.
    engine = [kv.value for a in got["/diagnostics"] for s in a.status if s.name == "hydranet: engine"
              for kv in s.values if kv.key == "model_sha256"]
    shipped = hashlib.sha256((REPO / "models" / "hydranet_effl0_road.onnx").read_bytes()).hexdigest()
    assert values["model"] == "" and engine and set(engine) == {shipped}
    assert not fake_rviz.exists(), "rviz2 started without rviz:=true"


@pytest.mark.usefixtures("ros2_cli")
def test_multi_camera_launch_serves_three_cameras_and_a_fused_grid_from_tf(ros, rclpy_node, tmp_path, fake_rviz):
    """hydranet_multi_camera.launch.py with its own params file: three cameras on one node; the mountings come
    from /tf_static (a vehicle's robot_state_publisher), so each camera's grid and the fused ~/drivable_grid flow
    too. The file is given with one key added, max_age_ms: three frames take one pass of the shipped model longer
    than the default 200 ms on a 2-core CPU, and the node then rightly drops every frame as stale (its
    /diagnostics says so); the latency bound is not what this test is about."""
    cams = {"front": 0.0, "left": 1.2, "right": -1.2}
    overlay = yaml.safe_load((REPO / "config" / "hydranet_multi_camera.yaml").read_text())
    overlay["/**"]["ros__parameters"]["max_age_ms"] = 60_000
    params = tmp_path / "multi.yaml"
    params.write_text(yaml.safe_dump(overlay))
    tf_static(ros, cams)
    launched = ros2_launch(ros, "launch_multi", "hydranet_multi_camera.launch.py", f"params_file:={params}")
    start = time.time()
    start_rig(ros, "rig_multi", rate=2, count=0, wait_for=[f"/camera/{c}/image_raw" for c in cams], streams=[
        {"topic": f"/camera/{c}/image_raw", "image": IMAGE, "size": [640, 360], "frame_id": f"camera_{c}_optical"}
        for c in cams])
    got = wait_for_every_output(rclpy_node, launched, "/", list(cams))
    assert "/hydranet/drivable_grid" in got
    assert {t.split("/")[2] for t in got if t.count("/") > 2} == set(cams)
    check_stamps_and_frames(got, {f"camera_{c}_optical" for c in cams}, (start - 1, time.time() + 1))
    values = param_dump(ros, "/hydranet")
    assert values["camera_names"] == list(cams) and values["use_sim_time"] is False
    assert values["cameras.right.fallback_fx"] == 1000.0
    assert not fake_rviz.exists(), "rviz2 started without rviz:=true"


@pytest.mark.usefixtures("ros2_cli")
def test_replay_launch_with_the_compressed_params_plays_a_jpeg_camera_on_sim_time(ros, rclpy_node, fake_rviz):
    """hydranet_replay.launch.py with the README's params_file (the package's hydranet_compressed.yaml, found
    through `ros2 pkg prefix`): replay mode and sim time whatever the file says, the JPEG topic of the shipped
    sample bag, reliable input as a bag player publishes it."""
    from hydranet_ros.tools.demo import SAMPLE_BAG, find_cameras

    prefix = subprocess.run([str(ROS2), "pkg", "prefix", "hydranet_ros"], env=ros.env(), capture_output=True,
                            text=True, check=True).stdout.strip()
    params = Path(prefix) / "share" / "hydranet_ros" / "config" / "hydranet_compressed.yaml"
    assert params.resolve() == (REPO / "config" / "hydranet_compressed.yaml").resolve()
    (camera,) = find_cameras(SAMPLE_BAG)
    tf_static(ros, {"front": 0.0})
    launched = ros2_launch(ros, "launch_replay", "hydranet_replay.launch.py", f"params_file:={params}")
    start_rig(ros, "rig_replay", rate=4, count=0, clock=True, wait_for=[camera.image_topic], streams=[
        {"topic": camera.image_topic, "image": IMAGE, "encoding": "jpeg", "qos": "reliable",
         "info_topic": camera.info_topic, "intrinsics": INTRINSICS, "frame_id": "camera_front_optical"}])
    got = wait_for_every_output(rclpy_node, launched, "/", ["front"])
    check_stamps_and_frames(got, {"camera_front_optical"}, (1000.0, 1000.0 + 3600))
    values = param_dump(ros, "/hydranet")
    assert (values["mode"], values["use_sim_time"]) == ("replay", True)
    assert values["cameras.front.image_topic"] == camera.image_topic and values["cameras.front.compressed"] is True
    assert not fake_rviz.exists(), "rviz2 started without rviz:=true"


@pytest.mark.usefixtures("ros2_cli")
@pytest.mark.parametrize("name", ["hydranet.launch.py", "hydranet_replay.launch.py"])
def test_rviz_true_starts_rviz2_with_the_package_config(ros, fake_rviz, name):
    launched = ros2_launch(ros, "launch_rviz", name, "rviz:=true")
    deadline = time.monotonic() + OUTPUT_TIMEOUT_S
    while not fake_rviz.exists() or not fake_rviz.read_text().strip():
        assert launched.alive() and time.monotonic() < deadline, launched.output()
        time.sleep(0.1)
    argv = fake_rviz.read_text().split("\n")
    config = Path(argv[argv.index("-d") + 1])
    assert config.resolve() == RVIZ.resolve() and RVIZ.is_file()
    # On sim time with the replay launch file, so that it shows a bag's messages at their recorded time.
    if name == "hydranet_replay.launch.py":
        files = [Path(argv[i + 1]) for i, a in enumerate(argv) if a == "--params-file"]
        assert any(load_params_file(f).get("use_sim_time") is True for f in files), argv


@pytest.mark.usefixtures("ros2_cli")
@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_every_launch_argument_has_a_default_a_description_a_usage_line_and_a_readme_entry(ros, name):
    out = subprocess.run([str(ROS2), "launch", "hydranet_ros", name, "--show-args"], env=ros.env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    arguments = re.findall(r"^    '(\w+)':\n        (.+)\n        \(default: (.+)\)$", out.stdout, re.MULTILINE)
    assert {a[0] for a in arguments} >= {"params_file", "namespace", "rviz"} - ({"rviz"} if "multi" in name else set())
    defaults = {a[0]: a[2] for a in arguments}
    own = "hydranet_multi_camera.yaml" if "multi" in name else "hydranet.yaml"
    assert re.search(rf"FindPackageShare\(pkg='hydranet_ros'\) \+ 'config' \+ '{own}'", defaults["params_file"])
    usage = (REPO / "launch" / name).read_text().split("\n")[0]
    assert usage.startswith(f'"""ros2 launch hydranet_ros {name}'), usage
    readme = (REPO / "README.md").read_text()
    for arg, description, default in arguments:
        assert description.strip() and default.strip(), arg
        assert f"{arg}:=" in usage, f"the usage line of {name} does not show {arg}:="
        assert re.search(rf"`{arg}`", readme), f"README does not document the launch argument {arg} of {name}"


def test_multi_camera_params_file_states_only_what_it_changes():
    defaults = load_params_file(DEFAULTS)
    overlay = load_params_file(REPO / "config" / "hydranet_multi_camera.yaml")
    repeated = [k for k, v in overlay.items() if not k.startswith("cameras.") and defaults.get(k) == v]
    assert repeated == []


def _displays(displays: list[dict]) -> list[dict]:
    out = []
    for d in displays:
        out.extend(_displays(d["Displays"]) if "Displays" in d else [d])
    return out


def test_rviz_config_shows_only_real_topics_in_the_published_frame():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config["Visualization Manager"]
    displays = _displays(manager["Displays"])
    camera_input = "/camera/front/image_raw"
    outputs = {f"/hydranet/front/{t}" for t in ("drivable_area", "lane_lines", "depth", "depth/camera_info",
                                                "detections", "overlay", "points", "detections_3d", "markers",
                                                "drivable_grid", "lane_polylines")}
    topics = {}
    for d in displays:
        assert {"Class", "Name", "Enabled", "Value"} <= set(d), d
        assert d["Class"].startswith("rviz_default_plugins/"), d["Class"]
        if "Topic" in d:
            topic = d["Topic"]
            assert {"Value", "Depth", "Durability Policy", "History Policy", "Reliability Policy"} <= set(topic)
            # Our outputs are volatile: a transient-local subscriber would never match them.
            assert topic["Durability Policy"] == "Volatile", d["Name"]
            topics[topic["Value"]] = (d["Class"].split("/")[1], topic["Reliability Policy"])
    assert set(topics) <= outputs | {camera_input}, set(topics) - outputs - {camera_input}
    assert topics[camera_input] == ("Image", "Best Effort")
    assert topics["/hydranet/front/overlay"][0] == topics["/hydranet/front/depth"][0] == "Image"
    assert topics["/hydranet/front/points"][0] == "PointCloud2"
    assert topics["/hydranet/front/markers"][0] == topics["/hydranet/front/lane_polylines"][0] == "MarkerArray"
    assert topics["/hydranet/front/drivable_grid"][0] == "Map"
    assert "Grid" in {d["Class"].split("/")[1] for d in displays}
    (cloud,) = [d for d in displays if d["Class"].endswith("/PointCloud2")]
    assert cloud["Color Transformer"] == "RGB8"  # the node publishes x, y, z, rgb
    published = set()
    for py in (REPO / "hydranet_ros" / "tools").glob("*.py"):
        published |= set(re.findall(r'"(camera_\w+_optical)"', py.read_text()))
    assert published == {manager["Global Options"]["Fixed Frame"]}
    assert config["Visualization Manager"]["Views"]["Current"]["Target Frame"] == "<Fixed Frame>"


# --- the README's ros2 commands ---------------------------------------------------------------------------------

LONG_RUNNING = ("launch", "run")  # subcommands that start the node and run until stopped
# What each of the README's one-shot commands must print against the running node.
EXPECTED_OUTPUT = {
    "topic echo": "hydranet: engine",
    "param dump": "ros__parameters",
    "lifecycle set": "Transitioning successful",
}


def readme_ros2_commands() -> list[str]:
    lines = [line.split("  #")[0].strip() for line in (REPO / "README.md").read_text().splitlines()]
    return [line for line in lines if line.startswith(".venv/bin/ros2 ")]


def nothing_sourced(env: dict[str, str]) -> dict[str, str]:
    """The environment of a shell in which no ROS setup file was sourced."""
    return {k: v for k, v in env.items() if k not in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "PYTHONPATH")}


def daemon_sees_the_node(env: dict[str, str]) -> None:
    """Wait until the ros2 daemon (started by the first call) lists /diagnostics and the node's parameter and
    lifecycle services: endpoints are discovered one by one, and a command asked too early says 'not found'."""
    wanted = {"/diagnostics", "/hydranet/get_parameters", "/hydranet/list_parameters", "/hydranet/change_state"}
    deadline, seen = time.monotonic() + DISCOVERY_TIMEOUT_S, set()
    while not wanted <= seen:
        assert time.monotonic() < deadline, f"the ros2 daemon never saw {wanted - seen}"
        time.sleep(0.2)
        seen = set()
        for what in ("topic", "service"):
            seen |= set(subprocess.run([str(ROS2), what, "list"], env=env, capture_output=True, text=True,
                                       timeout=60).stdout.split())


@pytest.mark.usefixtures("ros2_cli")
def test_the_readmes_ros2_commands_run_as_written_with_nothing_sourced(ros, rclpy_node):
    """Every README line that starts with `.venv/bin/ros2 ` runs here: the ones that start the node (launch,
    run) each bring up a node whose outputs flow; the others, in README order, answer against the first."""
    from vision_msgs.msg import Detection2DArray

    commands = readme_ros2_commands()
    starters = [c for c in commands if c.split()[1] in LONG_RUNNING]
    one_shot = [c for c in commands if c.split()[1] not in LONG_RUNNING]
    assert starters and one_shot, commands
    assert {" ".join(c.split()[1:3]) for c in one_shot} <= set(EXPECTED_OUTPUT), "add what the new command prints"
    env = nothing_sourced(ros.env())
    bin_dir = str(Path(sys.executable).parent) + "/"

    def argv(command: str) -> list[str]:
        return [a.replace(".venv/bin/", bin_dir, 1) for a in command.split()]

    detections: list = []
    rclpy_node.create_subscription(Detection2DArray, "/hydranet/front/detections", detections.append, 10)
    start_rig(ros, "rig_readme", rate=4, count=0, streams=[{"topic": "/camera/front/image_raw", "image": IMAGE}])
    try:
        for n, command in enumerate(starters):
            node = RosProcess(argv(command), env, ros.log_dir / f"readme_{n}.out", group=True)
            ros.processes.append(node)
            seen = len(detections)
            spin_until(rclpy_node, lambda s=seen, p=node: len(detections) > s or not p.alive(), OUTPUT_TIMEOUT_S,
                       lambda c=command, p=node: f"detections from `{c}`: {p.output()[-2000:]}")
            assert node.alive(), node.output()
            if n == 0:
                # The one-shot commands ask the ros2 daemon, which a first command starts and which needs its own
                # discovery time: let it see the node first, as a user's long-running daemon has.
                daemon_sees_the_node(env)
                for c in one_shot:
                    out = subprocess.run(argv(c), env=env, capture_output=True, text=True, timeout=120)
                    assert out.returncode == 0, f"`{c}` failed: {out.stdout}{out.stderr}"
                    assert EXPECTED_OUTPUT[" ".join(c.split()[1:3])] in out.stdout, (c, out.stdout[:2000])
            assert node.stop() == 0, f"`{command}` did not stop cleanly on Ctrl-C: {node.output()[-2000:]}"
            # Gone from the graph (and its last messages taken) before the next command's outputs are judged.
            spin_until(rclpy_node, lambda: rclpy_node.count_publishers("/hydranet/front/detections") == 0,
                       DISCOVERY_TIMEOUT_S, "the stopped node to leave the graph")
            spin_for(rclpy_node, 0.5)
    finally:
        # The one-shot commands start a ros2 daemon for this domain, as they would for a user: stop it.
        subprocess.run([str(ROS2), "daemon", "stop"], env=env, capture_output=True, timeout=60)


# --- the colcon path ------------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("ros2_cli")
def test_colcon_build_installs_a_package_that_ros2_launch_runs(ros, rclpy_node, tmp_path):
    """`colcon build --packages-select hydranet_ros` in a fresh workspace over the venv (the underlay), then
    `source install/setup.bash` and `ros2 launch` from that install: the node that runs is the installed one."""
    import psutil
    from vision_msgs.msg import Detection2DArray

    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.is_file():
        unavailable(f"needs colcon in the venv ({colcon}): set-up installs it with the ros2 command")
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "hydranet_ros").symlink_to(REPO)
    env = nothing_sourced(ros.env())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    build = subprocess.run([str(colcon), "build", "--packages-select", "hydranet_ros"], cwd=ws, env=env,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    installed = ws / "install" / "hydranet_ros"
    share = installed / "share" / "hydranet_ros"
    for f in LAUNCH_FILES:
        assert (share / "launch" / f).is_file(), f
    assert (installed / "share" / "ament_index" / "resource_index" / "packages" / "hydranet_ros").is_file()
    assert (installed / "lib" / "hydranet_ros" / "hydranet_node").is_file()
    shipped = {p.name for p in (REPO / "models").iterdir() if p.suffix in (".onnx", ".safetensors", ".yaml")}
    assert shipped and {p.name for p in (share / "models").iterdir()} == shipped

    def sourced(command: str) -> list[str]:
        return ["bash", "-c", f"source {ws}/install/setup.bash && {command}"]

    prefix = subprocess.run(sourced("ros2 pkg prefix hydranet_ros"), env=env, capture_output=True, text=True,
                            timeout=60)
    assert prefix.stdout.strip() == str(installed), prefix.stdout + prefix.stderr
    detections: list = []
    rclpy_node.create_subscription(Detection2DArray, "/hydranet/front/detections", detections.append, 10)
    launched = RosProcess(sourced("exec ros2 launch hydranet_ros hydranet.launch.py"), env,
                          ros.log_dir / "colcon_launch.out", group=True)
    ros.processes.append(launched)
    start_rig(ros, "rig_colcon", rate=4, count=0, wait_for=["/camera/front/image_raw"],
              streams=[{"topic": "/camera/front/image_raw", "image": IMAGE}])
    spin_until(rclpy_node, lambda: bool(detections) or not launched.alive(), OUTPUT_TIMEOUT_S,
               lambda: f"detections from the colcon install: {launched.output()[-2000:]}")
    children = [" ".join(p.cmdline()) for p in psutil.Process(launched.proc.pid).children(recursive=True)]
    assert any(str(installed / "lib" / "hydranet_ros" / "hydranet_node") in c for c in children), children
