"""hydranet make-bag: real videos and images -> rosbag2, read back with rosbags (and MCAP with a second reader)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import INTRINSICS, REPO, SAMPLES
from hydranet_ros.bags.make_bag import make_camera_bag
from hydranet_ros.bags.rosbag import open_reader

SAMPLE_BAG = SAMPLES / "udacity_drive"
IMAGE_TOPIC = "/camera/front/image_raw"
JPEG_TOPIC = "/camera/front/image_raw/compressed"
INFO_TOPIC = "/camera/front/camera_info"


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hydranet_ros.tools.cli", "make-bag", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def _read(bag: Path) -> tuple[dict[str, list[tuple[int, Any]]], dict[str, Any]]:
    """topic -> [(bag timestamp ns, message)], and topic -> connection."""
    with open_reader(bag) as reader:
        out: dict[str, list[tuple[int, Any]]] = {c.topic: [] for c in reader.connections}
        for conn, timestamp, raw in reader.messages():
            out[conn.topic].append((timestamp, reader.deserialize(raw, conn.msgtype)))
        return out, {c.topic: c for c in reader.connections}


def _stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def _video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert frames, f"cv2 reads no frame of {path}"
    return frames


def _jpeg_bgr(msg: Any) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "CompressedImage data is not a decodable image"
    return bgr


def _intrinsics() -> dict[str, Any]:
    return json.loads(Path(INTRINSICS).read_text())


def _expected_k(size: tuple[int, int]) -> np.ndarray:
    """The shipped intrinsics' K, scaled from its calibrated size to `size` (independently of the code under test):
    focal lengths scale, and the principal point moves with the pixel centres, c -> (c + 0.5) * s - 0.5."""
    spec = _intrinsics()
    k = np.array(spec["K"], dtype=float)
    for axis in (0, 1):
        s = size[axis] / spec["image_size_wh"][axis]
        k[axis, axis] *= s
        k[axis, 2] = (k[axis, 2] + 0.5) * s - 0.5
    return k.ravel()


def _check_timing(messages: list[tuple[int, Any]], start_ns: int, period_ns: int) -> None:
    for i, (timestamp, msg) in enumerate(messages):
        assert timestamp == start_ns + i * period_ns, f"frame {i}: bag timestamp {timestamp}"
        assert _stamp_ns(msg) == timestamp, f"frame {i}: header stamp differs from the bag timestamp"


def test_raw_video_resized_with_camera_info(shared_assets: Path, tmp_path: Path) -> None:
    video = shared_assets / "udacity/videos/solidWhiteRight.mp4"  # 960x540, a different size than the calibration
    start, every, count, size, rate = 3, 7, 4, (480, 270), 8.0
    summary = make_camera_bag(video, tmp_path / "bag", rate=rate, every=every, start_frame=start, max_frames=count,
                              resize=size, intrinsics=INTRINSICS, start_time=1_700_000_000.25, storage="mcap",
                              progress=False)
    msgs, conns = _read(tmp_path / "bag")
    assert set(msgs) == {IMAGE_TOPIC, INFO_TOPIC}
    assert summary.frames == count and len(msgs[IMAGE_TOPIC]) == count and len(msgs[INFO_TOPIC]) == count
    assert summary.size_bytes == sum(p.stat().st_size for p in (tmp_path / "bag").iterdir())
    _check_timing(msgs[IMAGE_TOPIC], 1_700_000_000_250_000_000, round(1e9 / rate))
    _check_timing(msgs[INFO_TOPIC], 1_700_000_000_250_000_000, round(1e9 / rate))
    assert summary.duration_s == pytest.approx((count - 1) / rate)

    frames = _video(video)
    for i, (_, img) in enumerate(msgs[IMAGE_TOPIC]):
        assert (img.width, img.height, img.encoding, img.step) == (*size, "rgb8", size[0] * 3)
        assert img.header.frame_id == "camera_front_optical"
        rgb = np.asarray(img.data).reshape(size[1], size[0], 3)
        n = start + i * every
        expected = cv2.cvtColor(cv2.resize(frames[n], size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        neighbour = cv2.cvtColor(cv2.resize(frames[n + 1], size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        err = np.abs(rgb.astype(int) - expected).mean()
        # The next frame must be told apart, or this check could not see an off-by-one.
        assert err < 0.5 < np.abs(rgb.astype(int) - neighbour).mean(), f"frame {i} is not video frame {n}"

    spec = _intrinsics()
    for _, info in msgs[INFO_TOPIC]:
        assert (info.width, info.height, info.header.frame_id) == (*size, "camera_front_optical")
        np.testing.assert_allclose(info.k, _expected_k(size), rtol=1e-12)
        assert info.p[0] == info.k[0] and info.p[2] == info.k[2] and info.p[5] == info.k[4] and info.p[6] == info.k[5]
        np.testing.assert_allclose(info.d, spec["dist_k1k2p1p2k3"])
        assert info.distortion_model == "plumb_bob"

    for topic in (IMAGE_TOPIC, INFO_TOPIC):
        (qos,) = conns[topic].ext.offered_qos_profiles
        assert (qos.reliability.name, qos.durability.name) == ("RELIABLE", "VOLATILE")


def test_compressed_video_cli_sqlite3(shared_assets: Path, tmp_path: Path) -> None:
    video = shared_assets / "udacity/videos/test_video.mp4"  # 1280x720, 25 fps
    every, quality = 5, 90
    out = tmp_path / "drive"
    result = _cli(video, "-o", out, "--compressed", "--every", every, "--jpeg-quality", quality,
                  "--storage", "sqlite3", "--start-time", "1700000000")
    assert result.returncode == 0, result.stderr
    frames = _video(video)
    expected = frames[::every]
    assert f"{len(expected)} frames" in result.stdout and JPEG_TOPIC in result.stdout
    assert "storage_identifier: sqlite3" in (out / "metadata.yaml").read_text()
    msgs, conns = _read(out)
    assert set(msgs) == {JPEG_TOPIC}, "no CameraInfo without --intrinsics"
    assert len(msgs[JPEG_TOPIC]) == len(expected)
    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
    _check_timing(msgs[JPEG_TOPIC], 1_700_000_000 * 10**9, round(1e9 * every / fps))
    for i, (_, msg) in enumerate(msgs[JPEG_TOPIC]):
        assert msg.format == "jpeg" and msg.header.frame_id == "camera_front_optical"
        assert cv2.PSNR(_jpeg_bgr(msg), expected[i]) > 30.0
    assert conns[JPEG_TOPIC].ext.offered_qos_profiles[0].reliability.name == "RELIABLE"


def test_image_folder_natural_order_and_original_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    # frame10 sorts before frame2 as plain text; a PNG must be encoded, a JPEG copied.
    shutil.copy(SAMPLES / "project_video_1050.jpg", folder / "frame2.jpg")
    shutil.copy(SAMPLES / "project_video_0750.jpg", folder / "frame10.jpg")
    small = cv2.resize(cv2.imread(str(SAMPLES / "project_video_0750.jpg")), (640, 360), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "frame3.png"), small)
    (folder / "notes.txt").write_text("not an image")

    summary = make_camera_bag(folder, tmp_path / "bag", compressed=True, intrinsics=INTRINSICS, start_time=100.0,
                              progress=False)
    msgs, _ = _read(tmp_path / "bag")
    assert summary.frames == 3 and summary.rate_hz == 10.0
    jpegs = [m for _, m in msgs[JPEG_TOPIC]]
    assert bytes(jpegs[0].data) == (folder / "frame2.jpg").read_bytes()
    assert bytes(jpegs[2].data) == (folder / "frame10.jpg").read_bytes()
    assert cv2.PSNR(_jpeg_bgr(jpegs[1]), small) > 30.0
    _check_timing(msgs[JPEG_TOPIC], 100 * 10**9, 100_000_000)
    # CameraInfo follows each frame's own size.
    sizes = [(info.width, info.height) for _, info in msgs[INFO_TOPIC]]
    assert sizes == [(1280, 720), (640, 360), (1280, 720)]
    np.testing.assert_allclose(msgs[INFO_TOPIC][1][1].k, _expected_k((640, 360)), rtol=1e-12)


def test_image_folder_raw_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(SAMPLES / "project_video_0750.jpg", folder / "a.jpg")
    make_camera_bag(folder, tmp_path / "bag", rate=4.0, resize=(320, 180), topic="/cam/image_raw", frame_id="cam",
                    start_time=5.0, progress=False)
    msgs, _ = _read(tmp_path / "bag")
    assert set(msgs) == {"/cam/image_raw"}
    (_, img), = msgs["/cam/image_raw"]
    expected = cv2.resize(cv2.imread(str(folder / "a.jpg")), (320, 180), interpolation=cv2.INTER_AREA)
    assert (img.width, img.height, img.encoding, img.header.frame_id) == (320, 180, "rgb8", "cam")
    bgr = np.asarray(img.data).reshape(180, 320, 3)[:, :, ::-1]
    assert np.abs(bgr.astype(int) - expected).mean() < 0.5  # rgb8, not bgr8: swapped channels would differ a lot


def test_shipped_sample_bag() -> None:
    assert (SAMPLE_BAG / "metadata.yaml").is_file(), f"{SAMPLE_BAG} is missing"
    size = sum(p.stat().st_size for p in SAMPLE_BAG.iterdir())
    assert size <= 5_000_000, f"sample bag is {size / 1e6:.1f} MB"
    msgs, conns = _read(SAMPLE_BAG)
    assert set(msgs) == {JPEG_TOPIC, INFO_TOPIC}
    n = len(msgs[JPEG_TOPIC])
    assert 40 <= n <= 45 and len(msgs[INFO_TOPIC]) == n
    stamps = [t for t, _ in msgs[JPEG_TOPIC]]
    assert stamps == [t for t, _ in msgs[INFO_TOPIC]] == [_stamp_ns(m) for _, m in msgs[JPEG_TOPIC]]
    assert len(set(np.diff(stamps))) == 1, "frames are not evenly spaced"
    k = np.array(_intrinsics()["K"], dtype=float).ravel()
    for (_, jpeg), (_, info) in zip(msgs[JPEG_TOPIC], msgs[INFO_TOPIC], strict=True):
        assert jpeg.format == "jpeg" and jpeg.header.frame_id == info.header.frame_id == "camera_front_optical"
        assert (info.width, info.height) == (1280, 720)
        np.testing.assert_allclose(info.k, k)
    assert _jpeg_bgr(msgs[JPEG_TOPIC][0][1]).shape == (720, 1280, 3)
    assert conns[JPEG_TOPIC].ext.offered_qos_profiles[0].reliability.name == "RELIABLE"

    # A second, independent reader of the MCAP file: the mcap library with mcap-ros2-support's CDR decoder (its
    # read_ros2_messages helper does the same, but warns that it is deprecated).
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (mcap,) = SAMPLE_BAG.glob("*.mcap")
    second: dict[str, list[int]] = {}
    with mcap.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, msg in reader.iter_decoded_messages():
            assert schema.name == conns[channel.topic].msgtype and channel.message_encoding == "cdr"
            second.setdefault(channel.topic, []).append(message.log_time)
            assert message.log_time == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    assert second == {JPEG_TOPIC: stamps, INFO_TOPIC: stamps}


def test_shipped_sample_bag_matches_its_source(shared_assets: Path) -> None:
    """Every 2nd frame of test_small1.mp4, at 25 / 2 Hz, as samples/README.md says."""
    frames = _video(shared_assets / "udacity/videos/test_small1.mp4")
    msgs, _ = _read(SAMPLE_BAG)
    jpegs = [m for _, m in msgs[JPEG_TOPIC]]
    assert len(jpegs) == len(frames[::2])
    for i, msg in enumerate(jpegs):
        assert cv2.PSNR(_jpeg_bgr(msg), frames[2 * i]) > 30.0, f"frame {i}"
    stamps = [t for t, _ in msgs[JPEG_TOPIC]]
    assert stamps[1] - stamps[0] == round(1e9 * 2 / 25)


def test_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    image = tmp_path / "frames" / "a.jpg"
    image.parent.mkdir()
    shutil.copy(SAMPLES / "project_video_0750.jpg", image)

    def fails(*args: str | Path, says: str) -> None:
        result = _cli(*args)
        assert result.returncode == 2, (result.returncode, result.stderr)
        assert says in result.stderr and "Traceback" not in result.stderr, result.stderr

    fails(tmp_path / "nothing.mp4", "-o", tmp_path / "b1", says="does not exist")
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", "-o", tmp_path / "b2", says="no jpg/jpeg/png images")
    (tmp_path / "video.mp4").write_text("not a video")
    fails(tmp_path / "video.mp4", "-o", tmp_path / "b3", says="cannot open video")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"image_size_wh": [1280, 720], "dist_k1k2p1p2k3": [0, 0, 0, 0, 0]}))
    fails(image.parent, "-o", tmp_path / "b4", "--intrinsics", bad, says="bad intrinsics")
    for out in ("b1", "b2", "b3", "b4"):
        assert not (tmp_path / out).exists(), f"a failed run left {out} behind"

    # An existing output is refused; --force replaces a bag but never a folder that is not one.
    assert _cli(image.parent, "-o", tmp_path / "bag", "--quiet").returncode == 0
    fails(image.parent, "-o", tmp_path / "bag", says="exists (use --force")
    assert _cli(image.parent, "-o", tmp_path / "bag", "--force", "--frame-id", "replaced").returncode == 0
    msgs, _ = _read(tmp_path / "bag")
    assert [m.header.frame_id for _, m in msgs[IMAGE_TOPIC]] == ["replaced"]
    keep = tmp_path / "work"
    keep.mkdir()
    (keep / "thesis.txt").write_text("precious")
    fails(image.parent, "-o", keep, "--force", says="not a rosbag2 folder")
    assert (keep / "thesis.txt").read_text() == "precious"


def test_unreadable_frame_leaves_no_partial_bag(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(SAMPLES / "project_video_0750.jpg", folder / "1.jpg")
    (folder / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = _cli(folder, "-o", tmp_path / "bag")
    assert result.returncode == 2 and "2.png" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "bag").exists()


def test_help() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    for option in ("--compressed", "--rate", "--every", "--resize", "--intrinsics", "--start-time", "--storage"):
        assert option in result.stdout
