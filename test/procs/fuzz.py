"""A hostile camera in its own process: malformed Images, CompressedImages and CameraInfos, generated at random
(seeded) but each broken by construction, published reliably (keep all) so that every one reaches the node.

    fuzz.py PLAN_JSON

PLAN_JSON: {"seed": int, "images": n, "compressed": n, "infos": n, "image_topic", "compressed_topic",
"info_topic", "wait_for": [topics whose subscribers must be matched first]}

Images break one rule each, on random sizes, encodings, steps and endianness: an unknown encoding, a step shorter
than a row, data shorter than step x height, a zero dimension, more pixels than any camera has, a step x height
that overflows 32 bits. CompressedImages: not an image at all, empty, a JPEG or PNG cut short, a JPEG whose header
claims 0 or 60000 pixels, a PNG whose header claims 100000 x 100000, a PNG whose compressed data is scrambled.
CameraInfos: NaN, infinite, zero or negative focal lengths, NaN principal points or projection.

Every compressed case is checked against OpenCV here before it is sent: none decodes. Prints one JSON line at the
end: {"sent": {"images": n, "compressed": n, "infos": n}, "kinds": {kind: count}}.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from collections import Counter

import cv2
import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from hydranet_ros.ros.dds import use_shm_profile

KEEP_ALL = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "mono8": 1, "mono16": 2, "rgba8": 4, "bgra8": 4, "rgb16": 6, "16UC1": 2,
                   "8UC3": 3, "yuv422": 2, "bayer_rggb8": 1}
UNKNOWN = ["rgb42", "", "jpeg", "RGB8", "rgb8 ", "32FC7", "bayer_xyzw8", "yuv9000", "\u00e9ncoding", "x" * 300]


def _image(rng: np.random.Generator, kind: str, header: Header) -> Image:
    enc = str(rng.choice(list(BYTES_PER_PIXEL)))
    w, h = int(rng.integers(1, 2000)), int(rng.integers(1, 1200))
    bpp = BYTES_PER_PIXEL[enc]
    step = w * bpp
    size = step * h
    big = int(rng.integers(0, 2))
    if kind == "unknown_encoding":
        enc = str(rng.choice(UNKNOWN))
        data_len = size
    elif kind == "short_step":
        step = int(rng.integers(0, w * bpp))
        data_len = step * h
    elif kind == "short_data":
        data_len = int(rng.integers(0, size))
    elif kind == "zero_dimension":
        w, h = (0, h) if rng.integers(0, 2) else (w, 0)
        step = w * bpp
        data_len = int(rng.integers(0, 4096))
    elif kind == "too_many_pixels":
        w, h = int(rng.integers(20_000, 2**31)), int(rng.integers(20_000, 2**31))
        step = min(w * bpp, 2**32 - 1)
        data_len = int(rng.integers(0, 4096))
    elif kind == "overflow":
        step, h = 2**32 - 1, int(rng.integers(2, 2**31))
        data_len = int(rng.integers(0, 4096))
    else:
        raise ValueError(kind)
    data = rng.integers(0, 256, min(data_len, 40_000_000), dtype=np.uint8).tobytes()
    return Image(header=header, height=h, width=w, encoding=enc, is_bigendian=big, step=step, data=data)


def _jpeg(rng: np.random.Generator) -> bytes:
    w, h = int(rng.integers(16, 800)), int(rng.integers(16, 600))
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _png(rng: np.random.Generator) -> bytes:
    w, h = int(rng.integers(16, 400)), int(rng.integers(16, 300))
    ok, buf = cv2.imencode(".png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _set_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    """Rewrite the frame size in the JPEG's SOF0 header."""
    i = data.index(b"\xff\xc0")
    return data[: i + 5] + h.to_bytes(2, "big") + w.to_bytes(2, "big") + data[i + 9:]


def _set_png_size(data: bytes, w: int, h: int) -> bytes:
    body = w.to_bytes(4, "big") + h.to_bytes(4, "big") + data[24:29]
    crc = zlib.crc32(b"IHDR" + body).to_bytes(4, "big")
    return data[:16] + body + crc + data[33:]


def _compressed(rng: np.random.Generator, kind: str, header: Header) -> CompressedImage:
    fmt = str(rng.choice(["jpeg", "png", "rgb8; jpeg compressed bgr8", "bgr8; png compressed bgr8", "", "bmp"]))
    if kind == "not_an_image":
        data = rng.integers(0, 256, int(rng.integers(1, 100_000)), dtype=np.uint8).tobytes()
        data = b"GIF89a" + data if rng.integers(0, 2) else data
    elif kind == "empty":
        data = b""
    elif kind == "jpeg_cut_short":
        full = _jpeg(rng)
        data = full[: int(rng.integers(2, len(full) - 2))]
    elif kind == "png_cut_short":
        full = _png(rng)
        data = full[: int(rng.integers(8, len(full) - 12))]
    elif kind == "jpeg_zero_size":
        data = _set_jpeg_size(_jpeg(rng), 0, int(rng.integers(0, 2)))
    elif kind == "jpeg_huge":
        data = _set_jpeg_size(_jpeg(rng), 60_000, 60_000)
    elif kind == "png_huge":
        data = _set_png_size(_png(rng), 100_000, 100_000)
    elif kind == "png_scrambled":
        full = bytearray(_png(rng))
        start = full.index(b"IDAT") + 4
        end = full.rindex(b"IEND") - 8
        full[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()
        data = bytes(full)
    else:
        raise ValueError(kind)
    # Those two OpenCV would try to allocate (11 GB, 30 GB): a decoder must refuse them from the header.
    if data and kind not in ("jpeg_huge", "png_huge") and cv2.imdecode(np.frombuffer(data, np.uint8),
                                                                       cv2.IMREAD_COLOR) is not None:
        raise SystemExit(f"fuzz case {kind} decodes: not a malformed case")
    return CompressedImage(header=header, format=fmt, data=data)


def _info(rng: np.random.Generator, kind: str, header: Header) -> CameraInfo:
    fx, fy, cx, cy = 1000.0, 1000.0, 640.0, 360.0
    bad = {"nan_focal": float("nan"), "inf_focal": float("inf"), "zero_focal": 0.0,
           "negative_focal": -float(rng.integers(1, 5000))}
    p_bad = False
    if kind in bad:
        if rng.integers(0, 2):
            fx = bad[kind]
        else:
            fy = bad[kind]
    elif kind == "nan_centre":
        cx = float("nan")
    elif kind == "nan_projection":
        p_bad = True
    else:
        raise ValueError(kind)
    info = CameraInfo(header=header, width=1280, height=720, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    if p_bad:
        info.p[int(rng.integers(0, 12))] = float("nan")
    return info


IMAGE_KINDS = ("unknown_encoding", "short_step", "short_data", "zero_dimension", "too_many_pixels", "overflow")
COMPRESSED_KINDS = ("not_an_image", "empty", "jpeg_cut_short", "png_cut_short", "jpeg_zero_size", "jpeg_huge",
                    "png_huge", "png_scrambled")
INFO_KINDS = ("nan_focal", "inf_focal", "zero_focal", "negative_focal", "nan_centre", "nan_projection")


def main() -> int:
    plan = json.loads(sys.argv[1])
    use_shm_profile()
    rclpy.init()
    node = rclpy.create_node("test_fuzz_camera")
    rng = np.random.default_rng(plan.get("seed", 0))
    pubs = {"images": node.create_publisher(Image, plan["image_topic"], KEEP_ALL),
            "compressed": node.create_publisher(CompressedImage, plan["compressed_topic"], KEEP_ALL),
            "infos": node.create_publisher(CameraInfo, plan["info_topic"], KEEP_ALL)}
    by_topic = {plan["image_topic"]: pubs["images"], plan["compressed_topic"]: pubs["compressed"],
                plan["info_topic"]: pubs["infos"]}
    deadline = time.monotonic() + 20
    for topic in plan.get("wait_for", []):
        while by_topic[topic].get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    plan_kinds = {"images": IMAGE_KINDS, "compressed": COMPRESSED_KINDS, "infos": INFO_KINDS}
    makers = {"images": _image, "compressed": _compressed, "infos": _info}
    order = [k for k in ("images", "compressed", "infos") for _ in range(plan.get(k, 0))]
    rng.shuffle(order)
    sent, kinds = Counter(), Counter()
    for what in order:
        kind = str(rng.choice(plan_kinds[what]))
        msg = makers[what](rng, kind, Header(stamp=node.get_clock().now().to_msg(), frame_id="fuzz"))
        pubs[what].publish(msg)
        sent[what] += 1
        kinds[kind] += 1
        time.sleep(0.01)  # about 100 messages/s, like a few cameras; as fast as possible is the replay tests' job
    for pub in pubs.values():
        pub.wait_for_all_acked()
    print(json.dumps({"sent": dict(sent), "kinds": dict(kinds)}), flush=True)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
