"""The README reads in the order its users need, and its commands run as written.

Every ```bash block of the README is either run by a test (named below, and that test must exist) or listed with
the reason it cannot run on this machine (ROS from apt, a GPU, minutes of training). The blocks of the tools in
.venv run here, for real: the one-shot commands, and the node fed by `publish-image` and recorded by `record`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, RosEnv, RosProcess, spin_until

README = REPO / "README.md"
BIN = Path(sys.executable).parent

# The order of the top-level sections (issue 17): what it is, quick start, limitations near the top, the node, the
# vehicle, recorded drives, training, development, licence.
SECTIONS = ["Quick start", "Limitations", "The node", "On the vehicle", "Recorded drives", "Training your own model",
            "Development", "Licence"]

# Each bash block, by its first line: the test that runs it, or why it cannot run here.
BLOCKS = {
    "make demo": "test_demo.py (the demo) and .ci/run (make test is CI's command)",
    "ros2 launch hydranet_ros hydranet.launch.py [params_file": "synopsis; test_launch.py launches each file with "
                                                               "each argument",
    ".venv/bin/ros2 launch": "test_launch.py::test_the_readmes_ros2_commands_run_as_written_with_nothing_sourced",
    ".venv/bin/hydranet --help": "test_readme.py::test_the_tools_block_runs_as_written",
    ".venv/bin/hydranet_node --ros-args": "test_readme.py::test_the_step_by_step_block_runs_as_written",
    "sudo apt install": "cannot run here: ROS 2 from apt on the vehicle",
    "mkdir -p ~/ws/src": "cannot run here as written (rosdep and apt); its colcon build and ros2 run/launch: "
                         "test_launch.py::test_colcon_build_installs_a_package_that_ros2_launch_runs",
    ".venv/bin/hydranet build-engine": "cannot run here: TensorRT and an NVIDIA GPU",
    "export ROS_AUTOMATIC_DISCOVERY_RANGE": "test_demo.py::test_the_readmes_recorded_drives_block_runs_as_written",
    "ros2 launch hydranet_ros hydranet_replay.launch.py rviz:=true": "cannot run here: RViz (rviz:=true with the "
                                                                     "package config: test_launch.py)",
    "H=.venv/bin/hydranet": "cannot run in the suite: minutes of training on ../shared; each step is tested in "
                            "test_importers.py, test_teachers.py, test_train.py",
    ".venv/bin/hydranet info": "test_readme.py::test_the_network_block_runs_as_written (the bench lines: bench/)",
}


def bash_blocks() -> list[list[str]]:
    """The README's ```bash blocks, as lists of lines (continuations joined, comments after `  #` dropped)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    out = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", "", block)
        out.append([line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()])
    return out


def block_starting(first: str) -> list[str]:
    (block,) = [b for b in bash_blocks() if b[0].startswith(first)]
    return block


def test_the_sections_come_in_the_order_users_read_them():
    headings = re.findall(r"^## (.+)$", README.read_text(), re.MULTILINE)
    order = [next((s for s in SECTIONS if h.startswith(s)), None) for h in headings]
    assert [s for s in order if s] == SECTIONS, headings
    assert None not in order, f"a top-level section outside the agreed order: {headings}"
    # Limitations near the top: before any of the node's reference.
    text = README.read_text()
    assert text.index("## Limitations") < text.index("## The node") < len(text) // 4


def test_no_project_history_in_the_readme():
    text = README.read_text()
    assert not re.search(r"\bissues? \d+\b", text, re.IGNORECASE), re.findall(r".*\bissues? \d+\b.*", text, re.I)


def test_every_bash_block_is_run_by_a_test_or_says_why_it_cannot_run_here():
    tests = {p.name: p.read_text() for p in (REPO / "test").glob("test_*.py")}
    for block in bash_blocks():
        keys = [k for k in BLOCKS if block[0].startswith(k)]
        assert keys, f"README block starting {block[0]!r} is neither run by a test nor explained in BLOCKS"
        where = BLOCKS[max(keys, key=len)]
        for name, func in re.findall(r"(test_\w+\.py)::(\w+)", where):
            assert f"def {func}(" in tests[name], f"{name}::{func} (named for {block[0]!r}) does not exist"


def test_the_tools_block_runs_as_written(ros: RosEnv, rclpy_node):
    """`hydranet --help`, `env`, `params` answer; `hydranet_node` fed by `publish-image --loop` publishes."""
    from vision_msgs.msg import Detection2DArray

    block = block_starting(".venv/bin/hydranet --help")
    one_shot = [c for c in block if not c.startswith((".venv/bin/hydranet_node", ".venv/bin/hydranet publish"))]
    for command in one_shot:
        out = subprocess.run(command.replace(".venv/bin/", f"{BIN}/"), shell=True, cwd=REPO, env=ros.env(),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip(), (command, out.stdout, out.stderr)
    detections: list = []
    rclpy_node.create_subscription(Detection2DArray, "/hydranet/front/detections", detections.append, 10)
    for n, command in enumerate(c for c in block if c not in one_shot):
        argv = ["bash", "-c", "exec " + command.replace(".venv/bin/", f"{BIN}/")]
        ros.processes.append(RosProcess(argv, {**ros.env()}, ros.log_dir / f"readme_tools_{n}.out", group=True))
    spin_until(rclpy_node, lambda: bool(detections), 60.0,
               lambda: "detections: " + " | ".join(p.output()[-1500:] for p in ros.processes))


def test_the_step_by_step_block_runs_as_written(ros: RosEnv, rclpy_node, tmp_path: Path):
    """The node on a camera topic, a camera from `publish-image`, and `record` of two outputs for 10 s: the bag
    holds detections and depth (the /tmp path of the README is a temporary folder here)."""
    from vision_msgs.msg import Detection2DArray

    from hydranet_ros.bags.rosbag import open_reader

    block = [c.replace("/tmp/", f"{tmp_path}/") for c in block_starting(".venv/bin/hydranet_node --ros-args")]
    *starters, record = block
    for n, command in enumerate(starters):
        argv = ["bash", "-c", "exec " + command.replace(".venv/bin/", f"{BIN}/")]
        ros.processes.append(RosProcess(argv, ros.env(), ros.log_dir / f"readme_steps_{n}.out", group=True))
    # As a reader would, record once the node answers: its start (model load, warm-up) takes from 2 s on a quiet
    # machine to over 10 s on a loaded one, which would leave the 10 s recording empty.
    detections: list = []
    rclpy_node.create_subscription(Detection2DArray, "/hydranet/front/detections", detections.append, 10)
    spin_until(rclpy_node, lambda: bool(detections), 120.0,
               lambda: "detections: " + " | ".join(p.output()[-1500:] for p in ros.processes))
    out = subprocess.run(record.replace(".venv/bin/", f"{BIN}/"), shell=True, cwd=REPO, env=ros.env(),
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    with open_reader(tmp_path / "outputs") as reader:
        topics = {c.topic for c, _, _ in reader.messages()}
    assert topics == {"/hydranet/front/detections", "/hydranet/front/depth"}, (topics, out.stderr)


def test_the_network_block_runs_as_written(tmp_path: Path):
    """`hydranet info` and `hydranet export` of the default spec (the bench lines take minutes: bench/)."""
    block = [c for c in block_starting(".venv/bin/hydranet info") if not c.startswith(".venv/bin/python bench/")]
    assert len(block) == 2
    for command in block:
        # /tmp/ first: the venv itself may live under /tmp (a clone there).
        out = subprocess.run(command.replace("/tmp/", f"{tmp_path}/").replace(".venv/bin/", f"{BIN}/"), shell=True,
                             cwd=REPO, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (command, out.stdout, out.stderr)
    assert (tmp_path / "hydranet.onnx").stat().st_size > 1_000_000 and (tmp_path / "hydranet.yaml").is_file()


@pytest.mark.parametrize("anchor", sorted(set(re.findall(r"\]\(#([\w-]+)\)", README.read_text()))))
def test_every_in_page_link_has_its_heading(anchor: str):
    headings = re.findall(r"^#+ (.+)$", README.read_text(), re.MULTILINE)
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    assert anchor in slugs, f"#{anchor} names no heading"
