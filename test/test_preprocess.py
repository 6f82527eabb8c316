"""runtime/preprocess.py: raw and compressed camera frames -> RGB, letterboxing, and the way back to source pixels.

Built on a real road frame; every decoder is checked against an independent encoder written here, so a wrong
channel order, byte order or Bayer pattern fails.
"""

from __future__ import annotations

import array
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import SAMPLES
from hydranet_ros.core.geometry import PAD_RGB, Letterbox
from hydranet_ros.core.images import (
    COMPRESSED_FORMATS,
    MAX_PIXELS,
    RAW_ENCODINGS,
    ImageError,
    decode_compressed,
    decode_raw,
)
from hydranet_ros.runtime.preprocess import make_batch

FRAME = SAMPLES / "project_video_0750.jpg"  # Udacity freeway, 1280x720
RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    img = cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)
    assert img.shape == (720, 1280, 3)
    return img


def packed(pixels: np.ndarray, pad: int = 13, last_row_padded: bool = True) -> tuple[bytes, int]:
    """H x W x C array (any dtype, byte order chosen) -> (bytes with `pad` garbage bytes after each row, step)."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    garbage = RNG.integers(0, 256, (rows.shape[0], pad), dtype=np.uint8)
    data = np.concatenate([rows, garbage], axis=1).tobytes()
    step = rows.shape[1] + pad
    return (data if last_row_padded else data[:-pad]), step


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# --- raw: the RGB family ---------------------------------------------------------------------------------------

def _alpha(img: np.ndarray) -> np.ndarray:
    return np.concatenate([img, RNG.integers(0, 256, img.shape[:2] + (1,), dtype=np.uint8)], axis=2)


RGB8_ENCODERS = {
    "rgb8": lambda x: x,
    "bgr8": lambda x: x[..., ::-1],
    "8UC3": lambda x: x[..., ::-1],
    "rgba8": _alpha,
    "bgra8": lambda x: _alpha(x[..., ::-1]),
}
CONTAINERS = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "array": lambda b: array.array("B", b),
    "numpy": lambda b: np.frombuffer(b, np.uint8).copy(),
}


@pytest.mark.parametrize("encoding", sorted(RGB8_ENCODERS))
@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_8bit_colour_round_trips_exactly_through_padded_rows(rgb, encoding, container):
    data, step = packed(np.ascontiguousarray(RGB8_ENCODERS[encoding](rgb)))
    out = decode_raw(encoding, 1280, 720, step, False, CONTAINERS[container](data))
    assert out.dtype == np.uint8 and out.shape == (720, 1280, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("encoding", sorted(RGB8_ENCODERS))
def test_the_result_never_aliases_the_message_buffer(rgb, encoding):
    # No padding and a writable numpy buffer: the easiest case to return a view by mistake.
    buf = np.ascontiguousarray(RGB8_ENCODERS[encoding](rgb)).reshape(-1).copy()
    out = decode_raw(encoding, 1280, 720, buf.size // 720, 0, buf)
    assert not np.shares_memory(out, buf)
    buf[:] = 0  # the caller reuses its buffer
    np.testing.assert_array_equal(out, rgb)


def test_the_last_row_needs_no_padding(rgb):
    data, step = packed(rgb, pad=5, last_row_padded=False)
    assert len(data) == step * 719 + 1280 * 3
    np.testing.assert_array_equal(decode_raw("rgb8", 1280, 720, step, 0, data), rgb)
    with pytest.raises(ImageError) as e:
        decode_raw("rgb8", 1280, 720, step, 0, data[:-1])
    assert e.value.reason == "data"


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_grey_on_three_channels(rgb, encoding):
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    data, step = packed(grey[..., None], pad=3)
    out = decode_raw(encoding, 1280, 720, step, 0, data)
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_keeps_the_high_byte_in_either_byte_order(encoding, bigendian):
    v = RNG.integers(0, 65536, (48, 64), dtype=np.uint16)
    data, step = packed(v.astype(">u2" if bigendian else "<u2")[..., None], pad=6)
    out = decode_raw(encoding, 64, 48, step, int(bigendian), data)
    np.testing.assert_array_equal(out, np.repeat((v >> 8).astype(np.uint8)[..., None], 3, axis=2))


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16", "rgba16", "bgra16"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_16bit_colour_in_either_byte_order(rgb, encoding, bigendian):
    img = rgb[:96, :128]
    v = img.astype(np.uint16) * 256 + RNG.integers(0, 256, img.shape, dtype=np.uint16)  # low byte is noise
    if encoding.startswith("bgr"):
        v = v[..., ::-1]
    if encoding.endswith("a16"):
        v = np.concatenate([v, RNG.integers(0, 65536, img.shape[:2] + (1,), dtype=np.uint16)], axis=2)
    data, step = packed(np.ascontiguousarray(v).astype(">u2" if bigendian else "<u2"), pad=10)
    np.testing.assert_array_equal(decode_raw(encoding, 128, 96, step, bigendian, data), img)


# --- raw: YUV 4:2:2 ---------------------------------------------------------------------------------------------

def bt601_yuv422(img: np.ndarray, order: str) -> bytes:
    """Independent RGB -> studio-swing BT.601 Y'CbCr 4:2:2, chroma averaged over each pixel pair."""
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    u, v = (c.reshape(c.shape[0], -1, 2).mean(axis=2) for c in (u, v))
    y0, y1 = y[:, 0::2], y[:, 1::2]
    planes = {"uyvy": (u, y0, v, y1), "yuyv": (y0, u, y1, v)}[order]
    quads = np.stack(planes, axis=2)  # H x W/2 x 4
    return np.clip(np.rint(quads), 0, 255).astype(np.uint8).tobytes()


@pytest.mark.parametrize(("encoding", "order", "other"),
                         [("yuv422", "uyvy", "yuyv"), ("uyvy", "uyvy", "yuyv"),
                          ("yuv422_yuy2", "yuyv", "yuv422"), ("yuyv", "yuyv", "uyvy")])
def test_yuv422_byte_orders(rgb, encoding, order, other):
    data = bt601_yuv422(rgb, order)
    assert mae(decode_raw(encoding, 1280, 720, 2560, 0, data), rgb) < 3
    assert mae(decode_raw(other, 1280, 720, 2560, 0, data), rgb) > 20  # the other order is clearly wrong


# --- raw: Bayer -------------------------------------------------------------------------------------------------

def mosaic(img: np.ndarray, pattern: str) -> np.ndarray:
    """ROS meaning: 'rggb' is R G on the first row and G B on the second, repeating."""
    out = np.empty(img.shape[:2], img.dtype)
    for letter, (dy, dx) in zip(pattern, [(0, 0), (0, 1), (1, 0), (1, 1)], strict=True):
        out[dy::2, dx::2] = img[dy::2, dx::2, "rgb".index(letter)]
    return out


PATTERNS = ["rggb", "bggr", "gbrg", "grbg"]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("colour", [(200, 0, 0), (0, 200, 0), (0, 0, 200), (30, 140, 240)])
def test_bayer_flat_colours_come_back(pattern, colour):
    flat = np.empty((16, 20, 3), np.uint8)
    flat[:] = colour
    data, step = packed(mosaic(flat, pattern)[..., None], pad=4)
    out = decode_raw(f"bayer_{pattern}8", 20, 16, step, 0, data)
    assert np.abs(out.astype(int) - colour).max() <= 1, out[8, 8]

    wide = mosaic(flat.astype(np.uint16) * 257, pattern).astype(">u2")
    out16 = decode_raw(f"bayer_{pattern}16", 20, 16, 40, 1, wide.tobytes())
    assert np.abs(out16.astype(int) - colour).max() <= 1, out16[8, 8]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_bayer_real_image(rgb, pattern):
    data = mosaic(rgb, pattern).tobytes()
    assert mae(decode_raw(f"bayer_{pattern}8", 1280, 720, 1280, 0, data), rgb) < 8
    wrong = PATTERNS[(PATTERNS.index(pattern) + 1) % 4]
    assert mae(decode_raw(f"bayer_{wrong}8", 1280, 720, 1280, 0, data), rgb) > 12


# --- raw: bad input ---------------------------------------------------------------------------------------------

def reason_of(fn, *args) -> str:
    with pytest.raises(ImageError) as e:
        fn(*args)
    assert str(e.value)  # a message a person can act on
    return e.value.reason


@pytest.mark.parametrize("encoding", ["32FC1", "nv12", "foo", "", "RGB8", "jpeg"])
def test_unknown_encoding(encoding):
    with pytest.raises(ImageError) as e:
        decode_raw(encoding, 4, 4, 12, 0, bytes(48))
    assert e.value.reason == "encoding"
    assert "rgb8" in str(e.value) and "bayer_rggb8" in str(e.value)  # lists what is supported
    assert isinstance(e.value, ValueError)


def test_bad_raw_frames_say_why():
    assert reason_of(decode_raw, "rgb8", 4, 4, 11, 0, bytes(48)) == "size"  # step < 4*3
    assert reason_of(decode_raw, "mono16", 4, 4, 7, 0, bytes(32)) == "size"  # step < 4*2
    assert reason_of(decode_raw, "rgb8", 4, 4, 12, 0, bytes(47)) == "data"  # one byte short
    assert reason_of(decode_raw, "rgb8", 4, 4, 12, 0, b"") == "data"
    assert reason_of(decode_raw, "rgb8", 4, 4, 12, 0, np.zeros(48, np.float32)) == "data"
    assert reason_of(decode_raw, "rgb8", 4, 4, 12, 0, [0] * 48) == "data"
    assert reason_of(decode_raw, "rgb8", 0, 4, 12, 0, bytes(48)) == "size"
    assert reason_of(decode_raw, "rgb8", 4, 0, 12, 0, bytes(48)) == "size"
    assert reason_of(decode_raw, "rgb8", -4, 4, 12, 0, bytes(48)) == "size"
    assert reason_of(decode_raw, "yuv422", 5, 4, 10, 0, bytes(40)) == "size"  # pixel pairs: odd width
    assert reason_of(decode_raw, "yuyv", 5, 4, 10, 0, bytes(40)) == "size"
    assert decode_raw("rgb8", 4, 4, 12, 0, bytes(48)).shape == (4, 4, 3)  # while the exact size is fine


def test_huge_dimensions_fail_fast_without_allocating():
    t = time.perf_counter()
    assert reason_of(decode_raw, "rgb8", 100_000, 100_000, 300_000, 0, bytes(16)) == "size"
    assert reason_of(decode_raw, "mono8", MAX_PIXELS + 1, 1, MAX_PIXELS + 1, 0, bytes(16)) == "size"
    assert time.perf_counter() - t < 0.1


def test_every_listed_encoding_decodes():
    assert len(RAW_ENCODINGS) == 25
    for encoding in RAW_ENCODINGS:
        out = decode_raw(encoding, 4, 2, 64, 0, bytes(128))  # a generous step suits every pixel size
        assert out.shape == (2, 4, 3) and out.dtype == np.uint8, encoding


def test_module_does_not_import_ros():
    code = ("import sys, hydranet_ros.runtime.preprocess\n"
            "print(any(m.startswith(('rclpy', 'sensor_msgs')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# --- compressed -------------------------------------------------------------------------------------------------

def encode(img: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def test_jpeg_file_decodes_like_imread(rgb):
    assert COMPRESSED_FORMATS == ("jpeg", "png")
    out = decode_compressed("jpeg", FRAME.read_bytes())
    assert out.shape == (720, 1280, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "JPEG", "jpg", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8",
                                 "mono8; jpeg compressed mono8", " Jpeg "])
def test_jpeg_format_strings(rgb, fmt):
    data = array.array("B", encode(rgb[..., ::-1], ".jpg"))
    assert mae(decode_compressed(fmt, data), rgb) < 3


def test_exif_orientation_is_ignored(rgb):
    # A camera's intrinsics describe the sensor's pixels; a rotated image would not match its CameraInfo.
    jpg = encode(rgb[:64, :96, ::-1], ".jpg")
    tiff = b"MM\x00*" + struct.pack(">IHHHIHHI", 8, 1, 0x0112, 3, 1, 6, 0, 0)  # one IFD entry: Orientation = 6
    app1 = b"Exif\x00\x00" + tiff
    rotated = jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]
    assert cv2.imdecode(np.frombuffer(rotated, np.uint8), cv2.IMREAD_COLOR).shape == (96, 64, 3)  # would rotate
    assert decode_compressed("jpeg", rotated).shape == (64, 96, 3)


@pytest.mark.parametrize("fmt", ["png", "PNG", "bgr8; png compressed bgr8", "rgb8; png compressed rgb8"])
def test_png_8bit_is_exact(rgb, fmt):
    np.testing.assert_array_equal(decode_compressed(fmt, encode(rgb[..., ::-1], ".png")), rgb)


def test_png_16bit_and_grey(rgb):
    img = rgb[:64, :96]
    v = img.astype(np.uint16) * 256 + RNG.integers(0, 256, img.shape, dtype=np.uint16)
    np.testing.assert_array_equal(decode_compressed("png", encode(v[..., ::-1], ".png")), img)

    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    expected = np.repeat(grey[..., None], 3, axis=2)
    np.testing.assert_array_equal(decode_compressed("png", encode(grey, ".png")), expected)
    grey16 = grey.astype(np.uint16) * 256 + 200
    np.testing.assert_array_equal(decode_compressed("png", np.frombuffer(encode(grey16, ".png"), np.uint8)), expected)


@pytest.mark.parametrize("fmt", ["tiff", "h264", "", "jpeg2000", "16UC1; compressedDepth png", "rgb8; jpeg foo"])
def test_unsupported_compressed_formats(rgb, fmt):
    assert reason_of(decode_compressed, fmt, encode(rgb[:8, :8], ".jpg")) == "encoding"


def test_corrupt_and_truncated_compressed_data(rgb):
    jpg, png = encode(rgb[..., ::-1], ".jpg"), encode(rgb[..., ::-1], ".png")
    noise = RNG.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    assert reason_of(decode_compressed, "jpeg", b"\xff\xd8" + noise) == "decode"
    assert reason_of(decode_compressed, "jpeg", b"\xff\xd8" + noise + b"\xff\xd9") == "decode"  # ends right
    assert reason_of(decode_compressed, "jpeg", noise) == "decode"  # not a JPEG at all
    for frac in (0.1, 0.5, 0.9, 0.999):
        assert reason_of(decode_compressed, "jpeg", jpg[: int(len(jpg) * frac)]) == "decode", frac
        assert reason_of(decode_compressed, "png", png[: int(len(png) * frac)]) == "decode", frac
    damaged = bytearray(png)
    damaged[len(png) // 2 : len(png) // 2 + 64] = bytes(64)  # IDAT corrupted, IEND intact
    assert reason_of(decode_compressed, "png", damaged) == "decode"
    assert reason_of(decode_compressed, "jpeg", b"") == "data"
    assert reason_of(decode_raw, "rgb8", 4, 4, 12, 0, b"") == "data"
    # zero padding after the end marker (some drivers pad buffers) is not truncation
    assert decode_compressed("jpeg", jpg + bytes(100)).shape == (720, 1280, 3)


def test_truncation_is_caught_even_where_the_decoder_is_lenient(rgb, monkeypatch):
    # OpenCV 4 decodes a truncated JPEG with only a warning, the missing part grey (OpenCV 5 refuses it): the end
    # marker check must catch it whatever the decoder does.
    jpg, png = encode(rgb[..., ::-1], ".jpg"), encode(rgb[..., ::-1], ".png")
    monkeypatch.setattr(cv2, "imdecode", lambda *_: rgb[..., ::-1].copy())
    assert decode_compressed("jpeg", jpg).shape == (720, 1280, 3)
    for cut in (1, 2, 1000, len(jpg) // 2):
        assert reason_of(decode_compressed, "jpeg", jpg[:-cut]) == "decode", cut
    for cut in (1, 12, len(png) // 2):
        assert reason_of(decode_compressed, "png", png[:-cut]) == "decode", cut


def test_compressed_header_claiming_a_huge_image_fails_before_decoding(rgb):
    png = bytearray(encode(rgb[:8, :8], ".png"))
    png[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width, height
    jpg = bytearray(encode(rgb[:8, :8], ".jpg"))
    sof = jpg.index(b"\xff\xc0")
    jpg[sof + 5 : sof + 9] = (9000).to_bytes(2, "big") * 2  # 81 Mpx
    t = time.perf_counter()
    assert reason_of(decode_compressed, "png", bytes(png)) == "size"
    assert reason_of(decode_compressed, "jpeg", bytes(jpg)) == "size"
    assert time.perf_counter() - t < 0.1


# --- letterbox --------------------------------------------------------------------------------------------------

def test_fit_wide_and_tall():
    lb = Letterbox.fit(1280, 720, 640, 384)
    assert (lb.scale, lb.new_w, lb.new_h, lb.pad_x, lb.pad_y) == (0.5, 640, 360, 0, 12)
    tall = Letterbox.fit(720, 1280, 640, 384)
    assert (tall.scale, tall.new_w, tall.new_h, tall.pad_x, tall.pad_y) == (0.3, 216, 384, 212, 0)
    tiny = Letterbox.fit(10_000, 1, 640, 384)
    assert (tiny.new_w, tiny.new_h) == (640, 1)  # never an empty content box
    with pytest.raises(ValueError):
        Letterbox.fit(0, 720, 640, 384)


def test_apply_puts_the_resized_image_in_the_content_box(rgb):
    lb = Letterbox.fit(1280, 720, 640, 384)
    net = lb.apply(rgb)
    assert net.shape == (384, 640, 3) and net.dtype == np.uint8
    np.testing.assert_array_equal(lb.content(net), cv2.resize(rgb, (640, 360), interpolation=cv2.INTER_AREA))
    assert (net[:12] == PAD_RGB).all() and (net[372:] == PAD_RGB).all()
    assert np.shares_memory(lb.content(net), net)  # a view

    tall = Letterbox.fit(720, 1280, 640, 384)
    img = np.ascontiguousarray(rgb.transpose(1, 0, 2))
    net = tall.apply(img)
    assert (net[:, :212] == PAD_RGB).all() and (net[:, 428:] == PAD_RGB).all()
    assert mae(tall.content(net), cv2.resize(img, (216, 384), interpolation=cv2.INTER_AREA)) < 1

    mid = Letterbox.fit(960, 540, 640, 384)  # shrunk by less than 2x: one INTER_AREA step
    img = cv2.resize(rgb, (960, 540))
    expected = cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(mid.content(mid.apply(img)), expected)

    small = Letterbox.fit(320, 180, 640, 384)  # enlarged
    net = small.apply(rgb[::4, ::4].copy())
    assert mae(small.content(net), cv2.resize(rgb[::4, ::4], (640, 360), interpolation=cv2.INTER_LINEAR)) == 0
    with pytest.raises(ValueError):
        lb.apply(rgb[:700])


def test_content_of_coarser_maps():
    lb = Letterbox.fit(1280, 720, 640, 384)  # content rows 12..372
    for stride in (1, 2, 4, 8):
        dense = np.zeros((384 // stride, 640 // stride), np.int64)
        c = lb.content(dense)
        assert c.shape == (round(360 / stride), 640 // stride), stride
        assert np.shares_memory(c, dense)
    depth = np.arange(96 * 160 * 2, dtype=np.float32).reshape(96, 160, 2)  # stride 4, with channels
    np.testing.assert_array_equal(lb.content(depth), depth[3:93])
    tall = Letterbox.fit(720, 1280, 640, 384)  # content columns 212..428
    np.testing.assert_array_equal(tall.content(np.arange(640)[None].repeat(96, 0)[:, ::4])[0], np.arange(212, 428, 4))


def test_boxes_round_trip_and_clip():
    for (w, h), box in [((1280, 720), (100, 200, 500, 600)), ((720, 1280), (10, 20, 700, 1270)),
                        ((1366, 768), (0.5, 300, 1366, 700))]:  # 1366: new/src differs from scale in y
        lb = Letterbox.fit(w, h, 640, 384)
        sx, sy = lb.new_w / w, lb.new_h / h  # forward by hand
        net = np.array([[box[0] * sx + lb.pad_x, box[1] * sy + lb.pad_y, box[2] * sx + lb.pad_x,
                         box[3] * sy + lb.pad_y]], np.float32)
        back = lb.boxes_to_source(net)
        assert back.dtype == np.float32 and back.shape == (1, 4)
        np.testing.assert_allclose(back[0], box, atol=1e-3)
    lb = Letterbox.fit(1280, 720, 640, 384)
    np.testing.assert_array_equal(lb.boxes_to_source([[320, 192, 321, 193]]), [[640, 360, 642, 362]])
    inside_padding = np.array([[-5, 0, 700, 380]], np.float64)
    np.testing.assert_array_equal(lb.boxes_to_source(inside_padding), [[0, 0, 1280, 720]])
    assert inside_padding[0, 0] == -5  # input untouched
    assert lb.boxes_to_source(np.zeros((0, 4), np.float32)).shape == (0, 4)
    with pytest.raises(ValueError):
        lb.boxes_to_source(np.zeros((3, 5)))


def test_intrinsics_to_content():
    lb = Letterbox.fit(1280, 720, 640, 384)
    assert lb.intrinsics_to_content(1000, 1000, 639.5, 359.5) == (500, 500, 319.5, 179.5)
    odd = Letterbox.fit(1366, 768, 640, 384)  # new 640x360: the axes scale slightly differently
    fx, fy, cx, cy = odd.intrinsics_to_content(1000, 1000, 682.5, 383.5)
    assert (cx, cy) == pytest.approx(((odd.new_w - 1) / 2, (odd.new_h - 1) / 2))  # centre stays the centre
    assert fx == pytest.approx(1000 * 640 / 1366) and fy == pytest.approx(1000 * 360 / 768)


# --- batches ----------------------------------------------------------------------------------------------------

def test_make_batch_of_mixed_sizes(rgb):
    images = [rgb, cv2.resize(rgb, (640, 480)), cv2.resize(rgb, (320, 240))]
    batch, boxes = make_batch(images, 640, 384)
    assert batch.shape == (3, 384, 640, 3) and batch.dtype == np.uint8 and batch.flags.c_contiguous
    assert [(b.src_w, b.src_h) for b in boxes] == [(1280, 720), (640, 480), (320, 240)]
    for img, lb, slot in zip(images, boxes, batch, strict=True):
        np.testing.assert_array_equal(slot, lb.apply(img))
    assert make_batch([], 640, 384)[0].shape == (0, 384, 640, 3)
    with pytest.raises(ValueError):
        make_batch([rgb[..., 0]], 640, 384)


@pytest.mark.parametrize("size", [(1280, 720), (640, 360), (960, 540), (1366, 768), (700, 500), (641, 361)])
def test_an_image_and_its_2x_upscale_give_identical_network_input(rgb, size):
    # Holds whenever the smaller image is not enlarged (enlarging interpolates; the upscale is blocky).
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (size[0] * 2, size[1] * 2), interpolation=cv2.INTER_NEAREST)
    (a, b), _ = make_batch([small, big], 640, 384)
    np.testing.assert_array_equal(a, b)
