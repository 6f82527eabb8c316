"""A few hundred malformed inputs from another process, generated at random (seeded) but each broken by
construction (test/procs/fuzz.py), beside good cameras: the node stays up, counts every one, and keeps answering
the good cameras. Replay mode, so that nothing is superseded and the counts must be exact."""

from __future__ import annotations

import json

from diagnostic_msgs.msg import DiagnosticArray
from vision_msgs.msg import Detection2DArray

from conftest import IMAGE, REPO, Collector, rig_published, spin_until, start_node, start_rig, wait_for_publishers

FUZZ = REPO / "test" / "procs" / "fuzz.py"


def test_hostile_inputs_are_counted_and_the_good_cameras_keep_going(ros, rclpy_node, hydranet_model):
    c = Collector(rclpy_node)
    c.listen("/diagnostics", DiagnosticArray)
    for cam in ("good", "calib"):
        c.listen(f"/hydranet/{cam}/detections", Detection2DArray)
    node = start_node(ros, hydranet_model, {
        "good": {}, "raw": {}, "jpeg": {"compressed": True},
        "calib": {"camera_info_topic": "/camera/calib/camera_info", "fallback_fx": 1000.0}},
        "node_fuzz", mode="replay")
    # Results published before this test has discovered the node would never reach it (test_transport.py).
    wait_for_publishers(rclpy_node, "/hydranet/calib/detections", timeout=30)
    plan = {"seed": 12, "images": 200, "compressed": 120, "infos": 60, "image_topic": "/camera/raw/image_raw",
            "compressed_topic": "/camera/jpeg/image_raw", "info_topic": "/camera/calib/camera_info",
            "wait_for": ["/camera/raw/image_raw", "/camera/jpeg/image_raw", "/camera/calib/camera_info"]}
    fuzz = ros.start_python(FUZZ, json.dumps(plan), name="fuzz")
    rig = start_rig(ros, "rig_fuzz_good", rate=5, count=40, wait_for=["/camera/good/image_raw"], streams=[
        {"topic": f"/camera/{cam}/image_raw", "image": IMAGE, "size": [640, 360], "qos": "reliable"}
        for cam in ("good", "calib")])
    assert fuzz.proc.wait(120) == 0, fuzz.output()
    report = json.loads(fuzz.output().strip().splitlines()[-1])
    sent = report["sent"]
    assert sent == {"images": 200, "compressed": 120, "infos": 60}, report
    good_sent = rig_published(rig, timeout=120)["/camera/good/image_raw"]

    def counted() -> bool:
        raw, jpeg, calib = c.latest("raw"), c.latest("jpeg"), c.latest("calib")
        # camera_info is taken best effort (it matches every camera driver), so one sent just as the reader
        # matched may not arrive; images come through the camera's reliable connection, every one.
        return bool(raw and jpeg and calib) and int(raw["dropped_malformed_total"]) == sent["images"] and int(
            jpeg["dropped_malformed_total"]) == sent["compressed"] and int(
            calib["camera_info_rejected_total"]) >= 0.9 * sent["infos"]
    spin_until(rclpy_node, counted, 60.0, lambda: "every malformed input counted: " + str(
        {cam: {k: v for k, v in c.latest(cam).items() if k.endswith("_total")} for cam in ("raw", "jpeg", "calib")}))
    assert node.alive(), node.output()
    for cam, n in (("raw", sent["images"]), ("jpeg", sent["compressed"])):
        v = c.latest(cam)
        assert int(v["received_total"]) == n and int(v["published_total"]) == 0, (cam, v)
    # The good cameras were served all along, every frame (replay mode): the calibrated one with its fallback
    # focal length, since each camera_info it got was rejected.
    c.wait(["/hydranet/good/detections", "/hydranet/calib/detections"], count=good_sent, timeout=60)
    assert c.latest("calib")["focal_length_from"] == "fallback_fx"
    log = node.output()
    # Throttled: at most one line per kind of problem and camera every 5 s.
    assert 0 < log.count("dropped a frame from /camera/raw/image_raw") < 60, log[-3000:]
    assert "Traceback" not in log
    assert node.stop() == 0, log[-3000:]
