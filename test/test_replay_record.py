"""hydranet replay and hydranet record as processes over real Fast DDS: frames replayed through hydranet_node are
all recorded, payloads survive a replay -> record round trip byte for byte (plus the documented 0-3 padding bytes),
and the replay options, QoS and errors behave as documented."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from conftest import INTRINSICS, NODE, SAMPLES, spin_until, wait_for_publishers
from hydranet_ros.bags.rosbag import open_reader, typestore
from hydranet_ros.ros.convert import camera_info_from_json, numpy_to_image

REPLAY = [sys.executable, "-m", "hydranet_ros.tools.cli", "replay"]
RECORD = [sys.executable, "-m", "hydranet_ros.tools.cli", "record"]
T0 = 1000 * 10**9  # bag time of the first message, ns (sim time therefore starts at 1000 s)
STEP = 100_000_000  # 10 Hz
KEEP_ALL = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
NODE_OUTPUTS = ["drivable_area", "lane_lines", "depth", "depth/camera_info", "detections"]


# --- bags written and read without the code under test ------------------------------------------------------------

def header(ns: int, frame_id: str = "cam") -> Header:
    return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame_id)


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def bag_qos(reliability: str = "reliable", durability: str = "volatile", depth: int = 5) -> Any:
    """A rosbags offered_qos_profiles entry, as `ros2 bag record` stores one."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    forever = QosTime(9223372036, 854775807)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability[reliability.upper()], QosDurability[durability.upper()],
               forever, forever, QosLiveliness.AUTOMATIC, forever, False)


def write_bag(path: Path, messages: list[tuple[str, int, Any]], qos: dict[str, list] | None = None,
              storage: str = "mcap") -> dict[str, list[bytes]]:
    """A rosbag2 bag of (topic, bag time ns, rclpy message), serialised by rclpy. Returns the CDR per topic."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    def msgtype(msg: Any) -> str:
        module, name = type(msg).__module__.split(".")[0], type(msg).__name__
        return f"{module}/msg/{name}"

    store = typestore({msgtype(m) for _, _, m in messages})
    written: dict[str, list[bytes]] = {}
    with Writer(path, version=9, storage_plugin=StoragePlugin[storage.upper()]) as writer:
        conns: dict[str, Any] = {}
        for topic, ns, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype(msg), typestore=store,
                                                     offered_qos_profiles=(qos or {}).get(topic, []))
            raw = serialize_message(msg)
            writer.write(conns[topic], ns, raw)
            written.setdefault(topic, []).append(raw)
    return written


def read_bag(path: Path) -> tuple[dict[str, list[tuple[int, bytes, Any]]], dict[str, Any]]:
    """{topic: [(bag time, raw, message)]} in bag order, and {topic: connection}."""
    reader = open_reader(path)
    try:
        got: dict[str, list[tuple[int, bytes, Any]]] = {}
        for conn, ns, raw in reader.messages():
            got.setdefault(conn.topic, []).append((ns, bytes(raw), reader.deserialize(raw, conn.msgtype)))
        return got, {c.topic: c for c in reader.connections}
    finally:
        reader.close()


def camera_bag(path: Path, frames: int) -> list[int]:
    """The two 1280x720 samples alternated as rgb8 Image + CameraInfo, 10 Hz from T0. Returns the stamps."""
    images = [cv2.cvtColor(cv2.imread(str(SAMPLES / f"project_video_{n}.jpg")), cv2.COLOR_BGR2RGB)
              for n in ("0750", "1050")]
    stamps = [T0 + i * STEP for i in range(frames)]
    messages = []
    for i, ns in enumerate(stamps):
        h = header(ns, "camera_front_optical")
        messages.append(("/camera/front/image_raw", ns, numpy_to_image(images[i % 2], "rgb8", h)))
        messages.append(("/camera/front/camera_info", ns, camera_info_from_json(Path(INTRINSICS), 1280, 720, h)))
    write_bag(path, messages)
    return stamps


def wait_exit(node, proc, timeout: float = 60.0) -> int:
    """Spin the test node (it is receiving) until `proc` exits; its exit code."""
    spin_until(node, lambda: not proc.alive(), timeout, f"{' '.join(proc.argv[2:4])} to finish")
    return proc.proc.returncode


def spin_for(node, seconds: float) -> None:
    end = time.monotonic() + seconds
    spin_until(node, lambda: time.monotonic() > end, seconds + 5.0, f"{seconds} s")


# --- tests --------------------------------------------------------------------------------------------------------

def test_frames_replayed_through_the_node_are_all_recorded_in_order(ros, rclpy_node, hydranet_model, tmp_path):
    node = rclpy_node
    stamps = camera_bag(tmp_path / "camera", frames=8)
    outputs = [f"/hydranet/front/{t}" for t in NODE_OUTPUTS]
    seen: dict[str, list[int]] = {t: [] for t in outputs}
    for topic in outputs:
        cls = {"depth/camera_info": CameraInfo, "detections": Detection2DArray}.get(topic.split("front/")[1], Image)
        node.create_subscription(cls, topic, lambda m, t=topic: seen[t].append(stamp_ns(m)), KEEP_ALL)
    hydranet = ros.start(NODE + ["--ros-args", "-p", "mode:=replay", "-p", "use_sim_time:=true",
                                 "-p", f"model:={hydranet_model}"], name="node_for_record")
    out = tmp_path / "recording"
    recorder = ros.start(RECORD + [str(out), "--use-sim-time", "--quiet", "--topics", *outputs], name="record_node")
    # Outputs are reliable + volatile: the recorder (and this node, which tells when all are out) must listen before
    # the first frame, as nothing is resent later. The recorder subscribes once the node offers them (model loaded);
    # seeing the node's publishers here means the node has discovered this process too; its matching follows.
    spin_until(node, lambda: all(node.count_subscribers(t) >= 2 and node.count_publishers(t) >= 1 for t in outputs),
               60.0, "the node's outputs and the recorder's subscriptions")
    spin_for(node, 0.5)
    # The node and the recorder are on sim time: both must hear /clock from the first frame on.
    replay = ros.start(REPLAY + [str(tmp_path / "camera"), "--wait-for", "/camera/front/image_raw",
                                 "--wait-for", "/clock:2", "--quiet"], name="replay_camera")
    assert wait_exit(node, replay) == 0, replay.output()
    assert "16 messages, 1 complete pass(es)" in replay.output()
    spin_until(node, lambda: all(len(s) >= len(stamps) for s in seen.values()), 60.0, "every output of every frame")
    spin_for(node, 0.5)  # the recorder gets them at the same time as this node; give it a moment
    assert recorder.stop() == 0, recorder.output()
    assert hydranet.alive(), hydranet.output()

    got, conns = read_bag(out)
    assert sorted(got) == sorted(outputs), recorder.output()
    for topic in outputs:
        assert [stamp_ns(m) for _, _, m in got[topic]] == stamps, topic
        assert conns[topic].ext.offered_qos_profiles[0].reliability.name == "RELIABLE"
        # --use-sim-time: stamped with the bag's /clock, which never runs past the last frame.
        assert all(T0 <= ns <= stamps[-1] for ns, _, _ in got[topic]), [ns for ns, _, _ in got[topic]]
    assert f"recorded to {out} (mcap)" in recorder.output()
    assert (out / "metadata.yaml").is_file() and (out / "recording.mcap").is_file()


def test_replay_then_record_is_lossless_and_mcap_readable(ros, rclpy_node, tmp_path):
    from mcap_ros2.reader import read_ros2_messages

    n = 12
    rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(SAMPLES / "project_video_0750.jpg")), cv2.COLOR_BGR2RGB), (640, 360))
    messages = []
    for i in range(n):
        ns = T0 + i * STEP
        frame = rgb.copy()
        frame[:8, :] = i  # every frame different
        messages.append(("/cam/image", ns, numpy_to_image(frame, "rgb8", header(ns))))
        messages.append(("/cam/camera_info", ns + 1_000_000, camera_info_from_json(Path(INTRINSICS), 640, 360,
                                                                                   header(ns))))
        dets = [Detection2D(header=header(ns), id=f"{i}.{k}",
                            results=[ObjectHypothesisWithPose()]) for k in range(i % 4)]
        for k, d in enumerate(dets):
            d.bbox.center.position.x, d.bbox.size_x = 10.0 * k + 0.5, 20.0
            d.results[0].hypothesis.class_id, d.results[0].hypothesis.score = "vehicle", 0.25 * k
        messages.append(("/cam/detections", ns + 2_000_000, Detection2DArray(header=header(ns), detections=dets)))
    topics = ["/cam/image", "/cam/camera_info", "/cam/detections"]
    original = write_bag(tmp_path / "in", messages, qos={t: [bag_qos()] for t in topics})
    out = tmp_path / "out"
    recorder = ros.start(RECORD + [str(out), "--topics", *topics, "--max-messages", str(3 * n), "--quiet"],
                         name="record_lossless")
    replay = ros.start(REPLAY + [str(tmp_path / "in"), "--rate", "4", "--quiet"]
                       + [a for t in topics for a in ("--wait-for", t)], name="replay_lossless")
    assert wait_exit(rclpy_node, replay) == 0, replay.output()
    assert recorder.proc.wait(30) == 0, recorder.output()  # --max-messages: it stops by itself once it has all

    got, conns = read_bag(out)
    for topic in topics:
        assert len(got[topic]) == n, (topic, recorder.output())
        for (_, raw, _), sent in zip(got[topic], original[topic], strict=True):
            # Fast DDS pads the serialised payload to 4 bytes; the message bytes themselves are unchanged.
            assert raw[:len(sent)] == sent and 0 <= len(raw) - len(sent) <= 3 and not any(raw[len(sent):]), topic
        qos = conns[topic].ext.offered_qos_profiles
        assert [(q.reliability.name, q.durability.name) for q in qos] == [("RELIABLE", "VOLATILE")], topic
    assert [m.detections[-1].id for _, _, m in got["/cam/detections"] if m.detections][:2] == ["1.0", "2.1"]

    # A second, independent reader of the same file.
    by_topic: dict[str, list[Any]] = {}
    for m in read_ros2_messages(out / "out.mcap"):
        by_topic.setdefault(m.channel.topic, []).append(m.ros_msg)
    assert {t: len(v) for t, v in by_topic.items()} == {t: n for t in topics}
    assert {(m.width, m.height, m.encoding) for m in by_topic["/cam/image"]} == {(640, 360, "rgb8")}
    assert [stamp_ns(m) for m in by_topic["/cam/image"]] == [T0 + i * STEP for i in range(n)]
    assert [len(m.detections) for m in by_topic["/cam/detections"]] == [i % 4 for i in range(n)]
    assert by_topic["/cam/detections"][3].detections[2].results[0].hypothesis.score == 0.5


def test_replay_window_topics_remap_clock_and_loops(ros, rclpy_node, tmp_path):
    node = rclpy_node
    bag = tmp_path / "ab"
    write_bag(bag, [(t, T0 + i * STEP, header(T0 + i * STEP)) for i in range(10) for t in ("/a", "/b")])
    got: dict[str, list[tuple[int, float]]] = {t: [] for t in ("/renamed", "/a", "/b", "/clock")}
    for topic in ("/renamed", "/a", "/b"):
        node.create_subscription(Header, topic, lambda m, t=topic: got[t].append(
            (m.stamp.sec * 10**9 + m.stamp.nanosec, time.monotonic())), KEEP_ALL)
    node.create_subscription(Clock, "/clock", lambda m: got["/clock"].append(
        (m.clock.sec * 10**9 + m.clock.nanosec, time.monotonic())), KEEP_ALL)

    # From 0.25 s, 0.4 s of bag time, /a only, published as /renamed.
    window = ros.start(REPLAY + [str(bag), "--topics", "/a", "--remap", "/a:=/renamed", "--start", "0.25",
                                 "--duration", "0.4", "--wait-for", "/renamed", "--wait-for", "/clock", "--quiet"],
                       name="replay_window")
    assert wait_exit(node, window) == 0, window.output()
    # Our --remap is ours alone: rcl must not read FROM:=TO in the command line as a (legacy) remap rule of its own,
    # which would apply a swap (/a:=/b and /b:=/a) twice.
    assert "remap rule" not in window.output(), window.output()
    spin_until(node, lambda: len(got["/renamed"]) >= 4, 10.0, "/renamed")
    spin_for(node, 0.2)
    assert [ns for ns, _ in got["/renamed"]] == [T0 + k * STEP for k in (3, 4, 5, 6)]
    assert got["/a"] == [] and got["/b"] == []
    arrivals = [t for _, t in got["/renamed"]]
    assert abs((arrivals[-1] - arrivals[0]) - 0.3) < 0.1, arrivals  # the recorded timing, at rate 1
    clock = [ns for ns, _ in got["/clock"]]
    assert clock == sorted(clock) and len(set(clock)) == len(clock), clock
    assert clock[0] >= T0 + 250_000_000 and clock[-1] == T0 + 6 * STEP, clock
    assert len(clock) >= 6, "/clock keeps running between messages"

    # Twice, /b only, 5x, without /clock.
    n_clock = len(got["/clock"])
    loops = ros.start(REPLAY + [str(bag), "--topics", "/b", "--loops", "2", "--rate", "5", "--no-clock",
                                "--wait-for", "/b", "--quiet"], name="replay_loops")
    assert wait_exit(node, loops) == 0, loops.output()
    spin_until(node, lambda: len(got["/b"]) >= 20, 10.0, "two passes of /b")
    spin_for(node, 0.2)
    assert [ns for ns, _ in got["/b"]] == [T0 + i * STEP for i in range(10)] * 2
    assert len(got["/clock"]) == n_clock and len(got["/renamed"]) == 4
    assert "20 messages, 2 complete pass(es)" in loops.output()


def test_bad_input_is_a_clear_error_without_traceback(ros, tmp_path):
    bag = tmp_path / "ab"
    write_bag(bag, [("/a", T0 + i * STEP, header(T0 + i * STEP)) for i in range(3)])
    (tmp_path / "taken").mkdir()
    cases = {
        "missing": (REPLAY + [str(tmp_path / "nope")], "no bag at"),
        "not_a_bag": (REPLAY + [str(tmp_path / "taken")], "without metadata.yaml"),
        "unknown_topic": (REPLAY + [str(bag), "--topics", "/a", "/nope"], "not in"),
        "rate": (REPLAY + [str(bag), "--rate", "0"], "rate must be > 0"),
        "start": (REPLAY + [str(bag), "--start", "5"], "past the end"),
        "remap": (REPLAY + [str(bag), "--remap", "/a=/x"], "--remap wants FROM:=TO"),
        "record_over": (RECORD + [str(tmp_path / "taken"), "--all"], "exists already"),
    }
    procs = {name: subprocess.Popen(argv, env=ros.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (argv, _) in cases.items()}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2, (name, stdout, stderr)
        assert cases[name][1] in stderr and "Traceback" not in stderr, (name, stderr)
    _, stderr = procs["unknown_topic"].communicate()
    assert "/nope" in stderr and "its topics are: /a" in stderr


def test_replay_offers_the_recorded_qos_and_record_keeps_it(ros, rclpy_node, tmp_path):
    node = rclpy_node
    bag = tmp_path / "qos"
    qos = {"/latched": [bag_qos("best_effort", "transient_local", depth=3)], "/reliable": [bag_qos()]}
    write_bag(bag, [(t, T0 + i * STEP, header(T0 + i * STEP)) for i in range(3)
                    for t in ("/latched", "/reliable", "/plain")], qos=qos, storage="sqlite3")
    out = tmp_path / "recorded"
    recorder = ros.start(RECORD + [str(out), "--all", "--exclude", "/clock", "/hydranet/.*", "--storage", "sqlite3",
                                   "--quiet"], name="record_all")
    replay = ros.start(REPLAY + [str(bag), "--loop", "--rate", "2", "--quiet"], name="replay_qos")
    expected = {"/latched": (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.TRANSIENT_LOCAL),
                "/reliable": (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE),
                "/plain": (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)}  # no profile recorded
    for topic, (reliability, durability) in expected.items():
        wait_for_publishers(node, topic)
        (info,) = node.get_publishers_info_by_topic(topic)
        assert (info.qos_profile.reliability, info.qos_profile.durability) == (reliability, durability), topic
    spin_until(node, lambda: all(node.count_subscribers(t) >= 1 for t in expected), 15.0, "the recorder")
    spin_for(node, 1.0)
    assert replay.stop() == 0, replay.output()  # SIGINT: a clean stop
    assert "stopped" in replay.output()
    assert recorder.stop() == 0, recorder.output()

    got, conns = read_bag(out)
    assert sorted(got) == sorted(expected), recorder.output()  # --all minus /rosout, /parameter_events, --exclude
    for topic, (reliability, durability) in expected.items():
        (offered,) = conns[topic].ext.offered_qos_profiles
        assert (offered.reliability.name, offered.durability.name) == (reliability.name, durability.name), topic
        assert {m.stamp.sec * 10**9 + m.stamp.nanosec for _, _, m in got[topic]} <= {T0, T0 + STEP, T0 + 2 * STEP}
    assert np.diff([ns for ns, _, _ in got["/reliable"]]).min() > 0  # stamped at reception, in order


def test_the_record_summary_shows_a_rate_only_for_streams(tmp_path):
    from hydranet_ros.bags.record import RecordedTopic, RecordSummary

    stream = RecordedTopic("/camera/front/image_raw", "sensor_msgs/msg/Image", count=31, bytes=10**6,
                           first_ns=0, last_ns=3 * 10**9)
    burst = RecordedTopic("/hydranet/transition_event", "lifecycle_msgs/msg/TransitionEvent", count=3, bytes=300,
                          first_ns=0, last_ns=8 * 10**6)
    table = RecordSummary(tmp_path / "bag", "mcap", [stream, burst]).table()
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.startswith("/")}
    assert rows["/camera/front/image_raw"][-1] == "10.0"
    assert rows["/hydranet/transition_event"][-1] == "–"  # 3 events in 8 ms are not a 250 Hz stream
