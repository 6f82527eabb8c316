"""The launch files and the RViz config, checked without ROS: launch/launch_ros cannot be installed here, so
test/fake_ros_launch/ records what each launch file asks for (same names and signatures as the real API) and
these tests evaluate it as `ros2 launch` would: argument defaults, package share paths, conditions, parameters.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from hydranet_ros.ros.params import camera_info_topic, load_params_file, resolve

REPO = Path(__file__).resolve().parents[1]
FAKE = Path(__file__).resolve().parent / "fake_ros_launch"
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
DEFAULTS = REPO / "config" / "hydranet.yaml"
RVIZ = REPO / "config" / "hydranet.rviz"


@pytest.fixture
def launch_file(monkeypatch: pytest.MonkeyPatch):
    """Load a launch file against the fake: (description, context with every argument's default)."""
    monkeypatch.syspath_prepend(str(FAKE))
    for name in [m for m in sys.modules if m.split(".")[0] in ("launch", "launch_ros")]:
        monkeypatch.delitem(sys.modules, name)

    def load(path: Path, **arguments: str):
        from launch import LaunchContext
        from launch.actions import DeclareLaunchArgument
        from launch.utilities import perform_substitutions

        spec = importlib.util.spec_from_file_location(path.name.replace(".", "_"), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        # An installed package's share folder mirrors the repo: share/hydranet_ros/config/x is config/x here.
        context = LaunchContext(package_shares={"hydranet_ros": REPO})
        for e in description.entities:
            if isinstance(e, DeclareLaunchArgument) and e.default_value is not None:
                context.launch_configurations[e.name] = perform_substitutions(context, e.default_value)
        unknown = set(arguments) - set(context.launch_configurations)
        assert not unknown, f"{path.name} declares no argument {unknown}"
        context.launch_configurations.update(arguments)
        return description, context

    yield load
    for name in [m for m in sys.modules if m.split(".")[0] in ("launch", "launch_ros")]:
        del sys.modules[name]


def _nodes(description, package: str) -> list:
    from launch_ros.actions import Node

    return [e for e in description.entities if isinstance(e, Node) and e.package == package]


def _given_parameters(description, context) -> tuple[dict, list[Path]]:
    """What the launch file gives the node: config/hydranet.yaml, then each entry of `parameters`."""
    from launch.utilities import perform_substitutions
    from launch_ros.parameter_descriptions import ParameterValue

    (node,) = _nodes(description, "hydranet_ros")
    given, files = load_params_file(DEFAULTS), []
    for entry in node.parameters:
        if isinstance(entry, dict):
            given.update({k: v.evaluate(context) if isinstance(v, ParameterValue) else v for k, v in entry.items()})
        else:
            files.append(Path(perform_substitutions(context, entry)))
            assert files[-1].is_file(), f"parameter file {files[-1]} is not in the package"
            given.update(load_params_file(files[-1]))
    return given, files


def _hydranet_parameters(description, context) -> tuple[dict, list[Path]]:
    """The node's parameter values as it resolves them (camera defaults filled in); fails on any problem."""
    given, files = _given_parameters(description, context)
    values, problems = resolve(given, ignorable=set(load_params_file(DEFAULTS)))
    assert problems == []
    if "use_sim_time" in given:  # rclpy's own parameter: resolve leaves it to rclpy
        values["use_sim_time"] = given["use_sim_time"]
    return values, files


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_starts_hydranet_node_with_valid_parameters(launch_file, path: Path):
    description, context = launch_file(path)
    nodes = _nodes(description, "hydranet_ros")
    assert [(n.executable, n.name) for n in nodes] == [("hydranet_node", "hydranet")]
    given, files = _given_parameters(description, context)
    assert files, "the launch file passes no parameter file"
    assert isinstance(given.pop("use_sim_time", False), bool)
    assert resolve(given, ignorable=set(load_params_file(DEFAULTS)))[1] == []


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_argument_has_a_default_a_description_and_a_usage_line(launch_file, path: Path):
    from launch.actions import DeclareLaunchArgument

    description, _ = launch_file(path)
    arguments = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert arguments
    usage = path.read_text().split("\n")[0]
    assert usage.startswith(f'"""ros2 launch hydranet_ros {path.name}'), usage
    for a in arguments:
        assert a.default_value is not None and a.description, a.name
        assert f"{a.name}:=" in usage, f"the usage line of {path.name} does not show {a.name}:="


def test_use_sim_time_argument_reaches_the_node(launch_file):
    for value in (False, True):
        description, context = launch_file(REPO / "launch" / "hydranet.launch.py", use_sim_time=str(value).lower())
        assert _hydranet_parameters(description, context)[0]["use_sim_time"] is value


def test_replay_sets_replay_mode_and_sim_time_over_any_params_file(launch_file, tmp_path: Path):
    live = tmp_path / "live.yaml"
    live.write_text("/**:\n  ros__parameters:\n    mode: live\n    use_sim_time: false\n")
    for arguments in ({}, {"params_file": str(live)}):
        description, context = launch_file(REPO / "launch" / "hydranet_replay.launch.py", **arguments)
        values, _ = _hydranet_parameters(description, context)
        assert (values["mode"], values["use_sim_time"]) == ("replay", True)


def test_multi_camera_config_gives_three_cameras_to_one_node(launch_file):
    description, context = launch_file(REPO / "launch" / "hydranet_multi_camera.launch.py")
    values, (params_file,) = _hydranet_parameters(description, context)
    assert params_file == REPO / "config" / "hydranet_multi_camera.yaml"
    assert values["camera_names"] == ["front", "left", "right"]
    for cam in values["camera_names"]:
        assert values[f"cameras.{cam}.image_topic"] == f"/camera/{cam}/image_raw"
        info = camera_info_topic(values[f"cameras.{cam}.camera_info_topic"], values[f"cameras.{cam}.image_topic"],
                                 values[f"cameras.{cam}.compressed"])
        assert info == f"/camera/{cam}/camera_info"
    # Only what it changes: no node-wide key that merely repeats config/hydranet.yaml.
    defaults, overlay = load_params_file(DEFAULTS), load_params_file(params_file)
    repeated = [k for k, v in overlay.items() if not k.startswith("cameras.") and defaults.get(k) == v]
    assert repeated == []


@pytest.mark.parametrize("name", ["hydranet.launch.py", "hydranet_replay.launch.py"])
def test_rviz_starts_only_when_asked_with_the_package_config(launch_file, name):
    from launch.utilities import perform_substitutions

    for arguments, starts in (({}, False), ({"rviz": "false"}, False), ({"rviz": "true"}, True)):
        description, context = launch_file(REPO / "launch" / name, **arguments)
        (rviz,) = _nodes(description, "rviz2")
        assert rviz.condition.evaluate(context) is starts, arguments
        flag = rviz.arguments.index("-d")
        assert Path(perform_substitutions(context, rviz.arguments[flag + 1])) == RVIZ
    assert RVIZ.is_file()


def test_replay_launch_with_the_compressed_params_listens_to_the_sample_bags_topic(launch_file):
    description, context = launch_file(REPO / "launch" / "hydranet_replay.launch.py",
                                       params_file=str(REPO / "config" / "hydranet_compressed.yaml"))
    values, _ = _hydranet_parameters(description, context)
    assert values["cameras.front.compressed"] is True
    from hydranet_ros.tools.demo import SAMPLE_BAG, find_cameras

    (camera,) = find_cameras(SAMPLE_BAG)
    assert values["cameras.front.image_topic"] == camera.image_topic and camera.compressed
    assert camera_info_topic(values["cameras.front.camera_info_topic"], camera.image_topic, True) == camera.info_topic


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
