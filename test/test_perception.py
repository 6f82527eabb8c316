"""runtime/pipeline.py without ROS: real frames (message-shaped, as the node and rosbags hand them over) through
the shipped default model in ONNX Runtime; bad frames fail alone; intrinsics follow each camera's calibration."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import IMAGE
from hydranet_ros.core.contract import default_model_path
from hydranet_ros.core.geometry import Calibration, Intrinsics
from hydranet_ros.runtime.engines import load_engine
from hydranet_ros.runtime.pipeline import EngineFailure, Perception

K = Intrinsics(1158.77, 1154.08, 669.64, 388.08)  # the Udacity camera at 1280x720 (samples/)


def raw(rgb: np.ndarray, encoding: str = "rgb8") -> SimpleNamespace:
    data = rgb if encoding == "rgb8" else rgb[:, :, ::-1]
    return SimpleNamespace(encoding=encoding, width=rgb.shape[1], height=rgb.shape[0], step=rgb.shape[1] * 3,
                           is_bigendian=0, data=np.ascontiguousarray(data).tobytes())


def jpeg(rgb: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(format="jpeg", data=cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes())


@pytest.fixture(scope="module")
def perception() -> Perception:
    engine = load_engine(default_model_path(), providers=["cpu"], threads=2)
    return Perception(engine, engine.contract)


def test_one_pass_serves_each_frame_in_its_own_geometry(perception: Perception) -> None:
    rgb = cv2.imread(IMAGE)[:, :, ::-1]
    half = cv2.resize(rgb, (640, 360), interpolation=cv2.INTER_AREA)
    frames = [raw(rgb), jpeg(half), raw(rgb, "bgr8")]
    calibrations = [Calibration(K, (1280, 720)), Calibration(K, (1280, 720)), Calibration()]
    p = perception.process(frames, calibrations, score_threshold=0.35)
    assert p.batch_size == 3 and p.infer_ms > 0 and p.preprocess_ms > 0
    full, small, uncalibrated = p.frames
    assert all(f.error is None and f.decode_ms > 0 for f in p.frames)
    assert full.result.source_size == (1280, 720) and small.result.source_size == (640, 360)
    # A calibration made at 1280x720 is rescaled to the 640x360 frame (pixel-centre convention).
    assert small.result.source_intrinsics == K.scaled(0.5, 0.5)
    assert (full.focal_source, small.focal_source, uncalibrated.focal_source) == ("camera_info",) * 2 + ("canonical",)
    # The same scene at half the resolution: metric depth agrees (the focal length halves with the pixels).
    d_full, d_small = full.result.depth, small.result.depth
    road = np.isfinite(d_full) & np.isfinite(d_small) & (d_full < 40)
    assert road.mean() > 0.3
    assert np.median(d_small[road] / d_full[road]) == pytest.approx(1.0, abs=0.1)
    # The model finds the cars of the sample frame, in source pixels of each frame.
    assert full.result.detections["detections"] and small.result.detections["detections"]
    assert max(d.x2 for d in full.result.detections["detections"]) <= 1280


def test_a_bad_frame_fails_alone_with_its_reason(perception: Perception) -> None:
    rgb = cv2.resize(cv2.imread(IMAGE)[:, :, ::-1], (320, 180), interpolation=cv2.INTER_AREA)
    truncated = raw(rgb)
    truncated.data = truncated.data[:1000]
    frames = [truncated, SimpleNamespace(format="jpeg", data=b"\xff\xd8 not a jpeg"), raw(rgb)]
    p = perception.process(frames, [Calibration()] * 3, score_threshold=0.35)
    assert [f.error.reason if f.error else None for f in p.frames] == ["data", "decode", None]
    assert p.batch_size == 1 and p.frames[2].result is not None and p.frames[0].result is None
    assert perception.process(frames[:2], [Calibration()] * 2, 0.35).batch_size == 0  # nothing to run
    with pytest.raises(ValueError, match="2 frames but 1 calibrations"):
        perception.process(frames[:2], [Calibration()], 0.35)


def test_an_engine_failure_is_told_apart_from_bad_frames(perception: Perception) -> None:
    class Broken:
        def run(self, _batch):
            raise RuntimeError("device lost")

    broken = Perception(Broken(), perception.contract)  # a named fake: an engine that fails cannot be made here
    rgb = cv2.resize(cv2.imread(IMAGE)[:, :, ::-1], (320, 180), interpolation=cv2.INTER_AREA)
    with pytest.raises(EngineFailure, match="RuntimeError: device lost"):
        broken.process([raw(rgb)], [Calibration()], 0.35)
