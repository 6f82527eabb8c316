"""hydranet_node as a process: parameters, lifecycle, run-time thresholds, and a clear exit on a bad model."""

from __future__ import annotations

import shutil
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from vision_msgs.msg import Detection2DArray

from conftest import IMAGE, NODE, RELIABLE, spin_until, start_rig, wait_for_publishers


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _call(node, client, request):
    spin_until(node, client.service_is_ready, 15.0, f"service {client.srv_name}")
    future = client.call_async(request)
    spin_until(node, future.done, 30.0, f"a reply from {client.srv_name}")
    return future.result()


def _wait_for_line(proc, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.output() and time.monotonic() < deadline and proc.alive():
        time.sleep(0.1)
    assert text in proc.output(), proc.output()


def test_lifecycle_configure_activate_deactivate_cleanup(ros, rclpy_node, hydranet_model):
    node = rclpy_node
    diags: list[DiagnosticArray] = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    dets: list[Detection2DArray] = []
    node.create_subscription(Detection2DArray, "/hydranet/front/detections", dets.append, RELIABLE)
    proc = ros.start(NODE + ["--ros-args", "-p", f"model:={hydranet_model}", "-p", "autostart:=false"],
                     name="node_lifecycle")
    get_state = node.create_client(GetState, "/hydranet/get_state")
    change = node.create_client(ChangeState, "/hydranet/change_state")

    def state() -> str:
        return _call(node, get_state, GetState.Request()).current_state.label

    def transition(tid: int) -> bool:
        return _call(node, change, ChangeState.Request(transition=Transition(id=tid))).success

    assert state() == "unconfigured"
    spin_until(node, lambda: bool(diags), 15.0, "/diagnostics from an unconfigured node")
    engine = next(s for s in diags[-1].status if s.name == "hydranet: engine")
    assert engine.level == DiagnosticStatus.WARN and engine.message == "not configured"
    assert node.count_publishers("/hydranet/front/detections") == 0

    assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
    wait_for_publishers(node, "/hydranet/front/detections")
    assert node.count_subscribers("/camera/front/image_raw") == 0, "inactive: not subscribed yet"
    assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
    rig = start_rig(ros, "rig_lifecycle", rate=4, count=0, wait_for=["/camera/front/image_raw"],
                    streams=[{"topic": "/camera/front/image_raw", "image": IMAGE, "size": [640, 360]}])
    spin_until(node, lambda: len(dets) >= 2, 30.0, "detections while active")

    assert transition(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    spin_until(node, lambda: node.count_subscribers("/camera/front/image_raw") == 0, 10.0, "the unsubscription")
    settled = len(dets)
    end = time.monotonic() + 1.5
    spin_until(node, lambda: time.monotonic() > end, 5.0, "1.5 s")
    assert len(dets) == settled, "an inactive node publishes nothing"
    assert transition(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
    spin_until(node, lambda: node.count_publishers("/hydranet/front/detections") == 0, 10.0, "publishers freed")
    rig.stop()
    assert proc.stop() == 0, proc.output()


def test_overrides_apply_and_bad_values_stop_the_node_with_a_clear_error(ros, tmp_path, hydranet_model):
    ok = ros.start(NODE + ["--ros-args", "-p", "mode:=replay", "-p", f"model:={hydranet_model}"], name="node_replay")
    bad = ros.start(NODE + ["--ros-args", "-p", "mode:=fast"], name="node_bad")
    user_file = tmp_path / "mine.yaml"
    user_file.write_text("/**:\n  ros__parameters:\n    max_age_msec: 100\n")
    typo = ros.start(NODE + ["--ros-args", "--params-file", str(user_file)], name="node_typo")
    providers = ros.start(NODE + ["--ros-args", "-p", "providers:=[cuda, gpu]"], name="node_providers")

    assert bad.proc.wait(30) == 2, bad.output()
    assert "mode must be one of live, replay; got 'fast'" in bad.output()
    assert typo.proc.wait(30) == 2, typo.output()
    assert "unknown parameter 'max_age_msec'" in typo.output()
    assert providers.proc.wait(30) == 2, providers.output()
    assert "providers must be a non-empty list without repeats of tensorrt, cuda, cpu" in providers.output()
    _wait_for_line(ok, "active: subscribed to /camera/front/image_raw")
    assert "mode=replay" in ok.output()


def test_a_missing_or_replaced_model_stops_the_node_with_what_to_do(ros, tmp_path, hydranet_model):
    missing = ros.start(NODE + ["--ros-args", "-p", f"model:={tmp_path / 'nope.onnx'}"], name="node_missing")
    replaced = tmp_path / "replaced.onnx"
    shutil.copy(hydranet_model, replaced)
    shutil.copy(hydranet_model.with_suffix(".yaml"), replaced.with_suffix(".yaml"))
    with open(replaced, "ab") as f:
        f.write(b"\0")  # still a loadable ONNX file, but not the one its card describes
    other = ros.start(NODE + ["--ros-args", "-p", f"model:={replaced}"], name="node_replaced")
    assert missing.proc.wait(60) == 1, missing.output()
    assert "no model at" in missing.output() and "hydranet export" in missing.output()
    assert other.proc.wait(60) == 1, other.output()
    assert "sha256" in other.output() and "Traceback" not in other.output()


def test_thresholds_change_at_run_time_and_bad_values_are_refused(ros, rclpy_node, hydranet_model):
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import GetParameters, SetParameters

    node = rclpy_node
    dets: list[Detection2DArray] = []
    node.create_subscription(Detection2DArray, "/hydranet/front/detections", dets.append, RELIABLE)
    ros.start(NODE + ["--ros-args", "-p", f"model:={hydranet_model}", "-p", "score_threshold:=0.0"],
              name="hydranet_node_params")
    set_client = node.create_client(SetParameters, "/hydranet/set_parameters")
    get_client = node.create_client(GetParameters, "/hydranet/get_parameters")

    def set_double(name: str, value: float):
        p = ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
        return _call(node, set_client, SetParameters.Request(parameters=[p])).results[0]

    wait_for_publishers(node, "/hydranet/front/detections", timeout=30)
    start_rig(ros, "rig_params", rate=4, count=0, wait_for=["/camera/front/image_raw"],
              streams=[{"topic": "/camera/front/image_raw", "image": IMAGE, "size": [640, 360]}])
    spin_until(node, lambda: len(dets) >= 1, 30.0, "detections")
    assert len(dets[-1].detections) >= 90  # threshold 0: the head's whole top-K

    refused = set_double("score_threshold", 1.5)
    assert not refused.successful and "score_threshold must be <= 1.0" in refused.reason
    assert set_double("score_threshold", 0.3).successful
    got = _call(node, get_client, GetParameters.Request(names=["score_threshold", "mode"])).values
    assert got[0].double_value == pytest.approx(0.3) and got[1].string_value == "live"
    n = len(dets)
    spin_until(node, lambda: len(dets) >= n + 3, 30.0, "detections after the change")
    assert all(d.results[0].hypothesis.score >= 0.3 for d in dets[-1].detections)
    assert len(dets[-1].detections) < 90
    p = ParameterMsg(name="mode", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="replay"))
    read_only = _call(node, set_client, SetParameters.Request(parameters=[p])).results[0]
    assert not read_only.successful, "mode is read-only while running"
    # A camera's fallback focal length applies from the next frame (the camera has no camera_info here).
    diags: list[DiagnosticArray] = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)

    def focal_from() -> str:
        return next((_values(s)["focal_length_from"] for a in reversed(diags) for s in a.status
                     if s.name == "hydranet: camera front"), "")
    spin_until(node, lambda: focal_from() == "canonical", 15.0, "a status without a focal length")
    assert set_double("cameras.front.fallback_fx", 800.0).successful
    spin_until(node, lambda: focal_from() == "fallback_fx", 15.0, "the fallback focal length in use")
    # A list of numbers, as `ros2 param set` and the service send it (rclpy hands it over as an array.array).
    bounds = ParameterMsg(name="grid_bounds_m", value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[0.0, 30.0, -10.0, 10.0]))
    result = _call(node, set_client, SetParameters.Request(parameters=[bounds])).results[0]
    assert result.successful, result.reason
    got = _call(node, get_client, GetParameters.Request(names=["grid_bounds_m"])).values
    assert list(got[0].double_array_value) == [0.0, 30.0, -10.0, 10.0]
