"""hydranet_node in its own process: announces itself, loads and validates parameters, reports on /diagnostics."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from conftest import SAMPLES, spin_until, wait_for_subscribers
from hydranet_ros.ros.convert import numpy_to_image

NODE = [str(Path(sys.executable).parent / "hydranet_node")]  # the console script, as `ros2 run` would


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_node_announces_and_reports_a_real_frame_on_diagnostics(ros, rclpy_node):
    node = rclpy_node
    diags: list[DiagnosticArray] = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    pub = node.create_publisher(Image, "/camera/front/image_raw", qos_profile_sensor_data)
    proc = ros.start(NODE, name="hydranet_node")

    spin_until(node, lambda: bool(diags), 15.0, "the first /diagnostics")
    first = diags[-1].status[0]
    assert first.level == DiagnosticStatus.WARN and first.message == "no frames received yet"
    assert "hydranet_node 0.1.0 up: mode=live" in proc.output()

    wait_for_subscribers(node, "/camera/front/image_raw")
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / "project_video_1050.jpg")), cv2.COLOR_BGR2RGB)
    sent = 0

    def reported() -> bool:
        nonlocal sent
        pub.publish(numpy_to_image(rgb, "rgb8", Header(frame_id="cam_front_test")))
        sent += 1
        return any(_values(s).get("frames_received", "0") != "0" for a in diags for s in a.status)

    spin_until(node, reported, 15.0, "the node to report a received frame")
    status = next(s for a in reversed(diags) for s in a.status if _values(s)["frames_received"] != "0")
    values = _values(status)
    assert status.level == DiagnosticStatus.OK
    assert values["last_size"] == "1280x720" and values["last_encoding"] == "rgb8"
    assert values["last_frame_id"] == "cam_front_test"
    assert 1 <= int(values["frames_received"]) <= sent
    assert proc.stop() == 0, proc.output()


def test_overrides_apply_and_bad_values_stop_the_node_with_a_clear_error(ros, tmp_path):
    ok = ros.start(NODE + ["--ros-args", "-p", "mode:=replay"], name="node_replay")
    bad = ros.start(NODE + ["--ros-args", "-p", "mode:=fast"], name="node_bad")
    user_file = tmp_path / "mine.yaml"
    user_file.write_text("/**:\n  ros__parameters:\n    max_age_msec: 100\n")
    typo = ros.start(NODE + ["--ros-args", "--params-file", str(user_file)], name="node_typo")

    assert bad.proc.wait(30) == 2, bad.output()
    assert "mode must be one of live, replay; got 'fast'" in bad.output()
    assert typo.proc.wait(30) == 2, typo.output()
    assert "unknown parameter 'max_age_msec'" in typo.output()
    deadline = time.monotonic() + 20
    while "up: mode=replay" not in ok.output() and time.monotonic() < deadline and ok.alive():
        time.sleep(0.1)
    assert "up: mode=replay" in ok.output(), ok.output()


def test_thresholds_change_at_run_time_and_bad_values_are_refused(ros, rclpy_node):
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import GetParameters, SetParameters

    node = rclpy_node
    ros.start(NODE, name="hydranet_node_params")
    set_client = node.create_client(SetParameters, "/hydranet/set_parameters")
    get_client = node.create_client(GetParameters, "/hydranet/get_parameters")
    spin_until(node, lambda: set_client.service_is_ready() and get_client.service_is_ready(), 15.0,
               "the node's parameter services")

    def call(client, request):
        future = client.call_async(request)
        spin_until(node, future.done, 10.0, "a parameter service reply")
        return future.result()

    def set_double(name: str, value: float):
        p = ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
        return call(set_client, SetParameters.Request(parameters=[p])).results[0]

    refused = set_double("score_threshold", 1.5)
    assert not refused.successful and "score_threshold must be <= 1.0" in refused.reason
    assert set_double("score_threshold", 0.6).successful
    got = call(get_client, GetParameters.Request(names=["score_threshold", "mode"])).values
    assert got[0].double_value == pytest.approx(0.6) and got[1].string_value == "live"
    p = ParameterMsg(name="mode", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="replay"))
    read_only = call(set_client, SetParameters.Request(parameters=[p])).results[0]
    assert not read_only.successful, "mode is read-only while running"
