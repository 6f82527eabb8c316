"""The ROS package is what a ROS engineer expects: the manifest, the install layout colcon produces from setup.py,
and the launch files' references. These checks need no ROS tools, so they hold in a fresh clone too; where the
ros2 command, launch and colcon are installed (set-up does it from ../shared/vendor), test_launch.py runs
`colcon build`, `ros2 launch` and `ros2 run` for real."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_DEPENDS = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "vision_msgs", "visualization_msgs",
               "diagnostic_msgs", "lifecycle_msgs", "python3-numpy", "python3-opencv"}


def _manifest() -> ET.Element:
    return ET.parse(REPO / "package.xml").getroot()


def test_package_xml_is_format_3_and_declares_every_run_dependency():
    root = _manifest()
    assert root.get("format") == "3"
    assert root.findtext("name") == "hydranet_ros"
    assert root.find("export/build_type").text == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")} | {e.text for e in root.findall("depend")}
    assert exec_deps >= RUN_DEPENDS, f"missing: {RUN_DEPENDS - exec_deps}"


def test_every_ros_message_package_the_code_imports_is_declared():
    imported = set()
    for py in (REPO / "hydranet_ros").rglob("*.py"):
        imported |= set(re.findall(r"^\s*(?:from|import) (\w+_msgs)\b", py.read_text(), re.M))
    declared = {e.text for e in _manifest().findall("exec_depend")}
    assert imported and imported <= declared, f"imported but not in package.xml: {imported - declared}"


def test_setup_installs_what_ros2_run_and_launch_need():
    setup = (REPO / "setup.py").read_text()
    assert '"hydranet_node = hydranet_ros.ros.node:main"' in setup
    assert '"hydranet = hydranet_ros.tools.cli:main"' in setup
    for folder in ("launch", "config", "models"):
        assert f'f"share/{{package_name}}/{folder}"' in setup
    assert (REPO / "resource" / "hydranet_ros").is_file()
    cfg = (REPO / "setup.cfg").read_text()
    assert "script_dir=$base/lib/hydranet_ros" in cfg and "install_scripts=$base/lib/hydranet_ros" in cfg


def test_launch_files_name_an_installed_executable_and_existing_config():
    launch_files = sorted((REPO / "launch").glob("*.launch.py"))
    assert launch_files
    for f in launch_files:
        tree = ast.parse(f.read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert "generate_launch_description" in names, f
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert "hydranet_node" in strings and "hydranet_ros" in strings
        for s in strings & {"hydranet.yaml"}:
            assert (REPO / "config" / s).is_file()


def test_pip_only_vision_msgs_is_hidden_from_colcon():
    assert (REPO / "pip_env" / "COLCON_IGNORE").is_file()
    assert ET.parse(REPO / "pip_env" / "vision_msgs" / "package.xml").getroot().findtext("name") == "vision_msgs"
