"""Perception: frames in, results and stage timings out. Decode, letterbox into one batch, one engine pass,
post-processing into each camera's geometry. No rclpy: the node schedules, converts and reports; this does the
work, so that it can be run and tested without ROS (the node, `hydranet eval`-like tools, benchmarks).

    perception = Perception(engine, contract)
    p = perception.process(messages, calibrations, score_threshold=0.35)
    for frame in p.frames:  # in input order
        frame.error  # an ImageError for a frame that could not be decoded (the others still ran)
        frame.result, frame.rgb, frame.focal_source, frame.decode_ms
    p.preprocess_ms, p.infer_ms, p.postprocess_ms  # of the pass (postprocess: per frame)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hydranet_ros.core.contract import ModelContract
from hydranet_ros.core.geometry import Calibration
from hydranet_ros.core.images import ImageError, decode_image_msg
from hydranet_ros.runtime.engines import Engine
from hydranet_ros.runtime.postprocess import FrameResult, split_batch
from hydranet_ros.runtime.preprocess import make_batch


class EngineFailure(RuntimeError):
    """The engine itself failed on a batch (its cause is the engine's exception), as opposed to a bad frame."""


@dataclass
class FrameOutcome:
    """One input frame's share of a pass: its result, or the reason it could not be decoded."""

    error: ImageError | None = None
    rgb: np.ndarray | None = None  # the decoded frame (the overlay and point colours use it)
    result: FrameResult | None = None
    focal_source: str = ""  # where its intrinsics came from: camera_info, fallback_fx, canonical, not needed
    decode_ms: float = 0.0


@dataclass
class PassOutput:
    frames: list[FrameOutcome] = field(default_factory=list)  # in input order
    batch_size: int = 0  # frames that went through the network
    preprocess_ms: float = 0.0  # letterbox of the whole batch
    infer_ms: float = 0.0
    postprocess_ms: float = 0.0  # per frame


class Perception:
    def __init__(self, engine: Engine, contract: ModelContract) -> None:
        self.engine = engine
        self.contract = contract

    def process(self, messages: Sequence[Any], calibrations: Sequence[Calibration], score_threshold: float,
                dense: str = "network") -> PassOutput:
        """One pass over `messages` (sensor_msgs/Image or CompressedImage, or anything with their fields), each
        with its camera's calibration. EngineFailure if the engine fails; a frame that cannot be decoded only
        gets its `error`."""
        if len(messages) != len(calibrations):
            raise ValueError(f"{len(messages)} frames but {len(calibrations)} calibrations")
        out = PassOutput(frames=[FrameOutcome() for _ in messages])
        decoded = []
        for i, msg in enumerate(messages):
            t0 = time.monotonic()
            try:
                out.frames[i].rgb = decode_image_msg(msg)
            except ImageError as exc:
                out.frames[i].error = exc
                continue
            out.frames[i].decode_ms = _ms(t0)
            decoded.append(i)
        if not decoded:
            return out
        c = self.contract
        t0 = time.monotonic()
        batch, boxes = make_batch([out.frames[i].rgb for i in decoded], c.input_width, c.input_height)
        out.preprocess_ms = _ms(t0)
        t0 = time.monotonic()
        try:
            outputs = self.engine.run(batch)
        except Exception as exc:
            raise EngineFailure(f"{type(exc).__name__}: {exc}") from exc
        out.infer_ms = _ms(t0)
        out.batch_size = len(decoded)
        t0 = time.monotonic()
        intrinsics = []
        for i, lb in zip(decoded, boxes, strict=True):
            # Without a calibration the canonical focal length applies at the network's scale.
            fx = c.canonical_fx / lb.scale if c.canonical_fx else None
            k, out.frames[i].focal_source = calibrations[i].at(lb.src_w, lb.src_h, fx)
            intrinsics.append(k)
        results = split_batch(outputs, c, boxes, intrinsics, score_threshold, dense)
        for i, result in zip(decoded, results, strict=True):
            out.frames[i].result = result
        out.postprocess_ms = _ms(t0) / len(decoded)
        return out


def _ms(t0: float) -> float:
    return (time.monotonic() - t0) * 1000.0
