"""A camera rig in its own process, for the node tests: publishes one or more image streams (with CameraInfo and,
optionally, /clock), all streams of a tick with the same stamp, as synchronised cameras do.

    camera.py PLAN_JSON

PLAN_JSON: {"rate": Hz (0: as fast as it can), "count": ticks (0: until stopped), "clock": bool (publish /clock =
the stamp; sim time starts at 1000 s and advances by 1/rate per tick), "wait_for": [topics whose subscribers must
be matched before the first tick: a subscription that cannot receive from us yet, such as a reliable one while we
publish best effort, does not count], "stock": bool (Fast DDS in its default configuration, as a camera driver on
a vehicle runs: none of our profile), "warmup": n (first publish n tiny 16x16 frames on every stream, 0.2 s apart,
so that the subscriber sees each publisher's first sequence number), "start_at": wall-clock time (s since the epoch)
of the first tick, after the warm-up (to set several rigs' phases), "streams": [STREAM, ...]}

STREAM: {"topic", "image": path, "size": [w, h] (cv2 INTER_AREA resize; optional), "upscale": k (nearest-neighbour
k x upscale after that; optional), "encoding": "rgb8" | "bgr8" | "mono8" | "jpeg" | "png" (the last two publish
CompressedImage), "qos": "best_effort" (depth 1) | "reliable" (keep all) | "default" (reliable, keep last 10: what
`create_publisher(Image, topic, 10)` gives, the usual camera driver) | "sensor_data" (best effort, keep last 5:
rclpy's qos_profile_sensor_data) | "reliable_last_1", "info_topic": topic or null, "intrinsics": JSON path (K for
the stream's size), "frame_id", "bad": [BAD, ...] (each tick publishes the next bad message of the list instead of
the image, cyclically), "bad_info": bool (CameraInfo with NaN in K)}

At the end it prints one JSON line: {"published": {topic: messages published, warm-up included}}.

BAD: unknown_encoding | step_mismatch | truncated | empty | corrupt_jpeg | truncated_jpeg | zero_size | huge
"""

from __future__ import annotations

import json
import os
import sys
import time

import cv2
import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from hydranet_ros.ros.convert import camera_info_from_json, numpy_to_image
from hydranet_ros.ros.dds import use_shm_profile

QOS = {
    "best_effort": QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT),
    "reliable": QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE),
    "default": QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE),
    "sensor_data": QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT),
    "reliable_last_1": QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE),
}


def load_rgb(stream: dict) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(stream["image"]), cv2.COLOR_BGR2RGB)
    if "size" in stream:
        rgb = cv2.resize(rgb, tuple(stream["size"]), interpolation=cv2.INTER_AREA)
    if stream.get("upscale", 1) > 1:
        k = stream["upscale"]
        rgb = cv2.resize(rgb, (rgb.shape[1] * k, rgb.shape[0] * k), interpolation=cv2.INTER_NEAREST)
    return rgb


def good_message(rgb: np.ndarray, encoding: str, header: Header) -> Image | CompressedImage:
    if encoding in ("jpeg", "png"):
        ok, buf = cv2.imencode(f".{'jpg' if encoding == 'jpeg' else 'png'}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return CompressedImage(header=header, format=encoding, data=buf.tobytes())
    if encoding == "bgr8":
        return numpy_to_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "bgr8", header)
    if encoding == "mono8":
        return numpy_to_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), "mono8", header)
    return numpy_to_image(rgb, "rgb8", header)


def bad_message(kind: str, rgb: np.ndarray, header: Header) -> Image | CompressedImage:
    img = numpy_to_image(rgb, "rgb8", header)
    if kind == "unknown_encoding":
        img.encoding = "rgb42"
    elif kind == "step_mismatch":
        img.step = img.width * 3 - 7
    elif kind == "truncated":
        img.data = bytes(img.data[: len(img.data) // 2])
    elif kind == "empty":
        img.data = b""
    elif kind == "zero_size":
        img.width = img.height = img.step = 0
        img.data = b""
    elif kind == "huge":
        img.width, img.height, img.step = 100_000, 100_000, 300_000
        img.data = bytes(1000)
    elif kind in ("corrupt_jpeg", "truncated_jpeg"):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        data = buf.tobytes()
        if kind == "corrupt_jpeg":
            data = data[:2] + np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
        else:
            data = data[: len(data) // 2]
        return CompressedImage(header=header, format="jpeg", data=data)
    else:
        raise SystemExit(f"unknown bad kind {kind}")
    return img


def main() -> int:
    plan = json.loads(sys.argv[1])
    if plan.get("stock"):
        os.environ.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)  # stock: no profile, whatever the environment says
    else:
        use_shm_profile()
    rclpy.init()
    node = rclpy.create_node("test_camera_rig")
    streams = plan["streams"]
    pubs, info_pubs, frames, infos = [], [], [], []
    for s in streams:
        msg_type = CompressedImage if s.get("encoding") in ("jpeg", "png") or any(
            b.endswith("jpeg") for b in s.get("bad", [])) else Image
        pubs.append(node.create_publisher(msg_type, s["topic"], QOS[s.get("qos", "reliable")]))
        rgb = load_rgb(s)
        frames.append(rgb)
        info_pubs.append(node.create_publisher(CameraInfo, s["info_topic"], 5) if s.get("info_topic") else None)
        infos.append(camera_info_from_json(s["intrinsics"], rgb.shape[1], rgb.shape[0])
                     if s.get("intrinsics") else None)
    clock_pub = node.create_publisher(Clock, "/clock", 10) if plan.get("clock") else None
    deadline = time.monotonic() + 20
    by_topic = {s["topic"]: pub for s, pub in zip(streams, pubs, strict=True)}
    for topic in plan.get("wait_for", []):
        def matched(t: str = topic) -> int:
            return by_topic[t].get_subscription_count() if t in by_topic else node.count_subscribers(t)
        while matched() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    published = {s["topic"]: 0 for s in streams}
    for _ in range(plan.get("warmup", 0)):
        tiny = np.zeros((16, 16, 3), np.uint8)
        for s, pub in zip(streams, pubs, strict=True):
            pub.publish(good_message(tiny, s.get("encoding", "rgb8"), Header(
                stamp=node.get_clock().now().to_msg(), frame_id=s.get("frame_id", "camera_test"))))
            published[s["topic"]] += 1
        time.sleep(0.2)
    if "start_at" in plan:
        time.sleep(max(0.0, plan["start_at"] - time.time()))
    rate, count = plan["rate"], plan.get("count", 0)
    print(f"camera rig: {len(streams)} stream(s) at {rate} Hz", flush=True)
    tick, start = 0, time.monotonic()
    try:
        while count == 0 or tick < count:
            if clock_pub is not None:
                ns = int(1000e9 + tick * 1e9 / (rate or 1000))  # rate 0: stamps 1 ms apart
                stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
                clock_pub.publish(Clock(clock=stamp))
            else:
                stamp = node.get_clock().now().to_msg()
            for s, pub, info_pub, rgb, info in zip(streams, pubs, info_pubs, frames, infos, strict=True):
                header = Header(stamp=stamp, frame_id=s.get("frame_id", "camera_test"))
                bad = s.get("bad")
                msg = bad_message(bad[tick % len(bad)], rgb, header) if bad else good_message(
                    rgb, s.get("encoding", "rgb8"), header)
                if info_pub is not None and info is not None:
                    info.header = header
                    if s.get("bad_info"):
                        info.k = [float("nan")] * 9
                    info_pub.publish(info)
                pub.publish(msg)
                published[s["topic"]] += 1
            tick += 1
            if rate > 0:
                time.sleep(max(0.0, start + tick / rate - time.monotonic()))
        for pub in pubs:
            pub.wait_for_all_acked()
        print(f"camera rig: published {tick} tick(s) in {time.monotonic() - start:.2f} s", flush=True)
        time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        print(json.dumps({"published": published}), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
