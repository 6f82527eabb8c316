"""Where camera frames wait between the executor (which receives them) and the inference thread (plain Python).

Two policies, one per mode:

* live: one slot per camera. A new frame replaces an unprocessed one (counted as dropped "busy": the engine was
  still working on the previous batch), so nothing can queue up and each pass sees the freshest frame of every
  camera.
* replay: a FIFO per camera, bounded in bytes. Nothing is dropped; each pass takes the oldest waiting frame of
  every camera, so every frame is processed, in the order it arrived. When the frames waiting hold `max_bytes`,
  `put` blocks until a pass takes some (a camera may always have one frame waiting, so a frame larger than the
  whole budget still gets through). The executor thread that called `put` then takes nothing more from DDS: the
  DDS reader's own small history fills, and a reliable publisher is slowed down instead of the node growing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    camera: str
    msg: Any  # sensor_msgs/Image or CompressedImage, undecoded: decoding is the worker's job, off the executor
    received: float  # time.monotonic() of the frame's arrival in the node (DDS reception where known)
    size: int = 0  # bytes of image data, for the replay budget


class FrameInbox:
    def __init__(self, cameras: list[str], mode: str, max_bytes: int | None = None) -> None:
        if mode not in ("live", "replay"):
            raise ValueError(f"mode must be live or replay, got {mode!r}")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.mode = mode
        self.max_bytes = max_bytes
        self._queues: dict[str, deque[Frame]] = {c: deque() for c in cameras}
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False

    def put(self, camera: str, msg: Any, received: float | None = None, size: int = 0) -> bool:
        """Add a frame; True when it replaced an unprocessed one (live mode's "busy" drop). In replay mode, waits
        while the budget is spent and this camera already has a frame waiting; after close() it returns at once
        and the frame is discarded (the node is stopping)."""
        frame = Frame(camera, msg, time.monotonic() if received is None else received, size)
        with self._cond:
            q = self._queues[camera]
            if self.mode == "live":
                replaced = bool(q)
                for old in q:
                    self._bytes -= old.size
                q.clear()
            else:
                replaced = False
                if self.max_bytes is not None:
                    self._cond.wait_for(lambda: self._closed or not q or self._bytes + size <= self.max_bytes)
                if self._closed:
                    return False
            q.append(frame)
            self._bytes += size
            self._cond.notify_all()
        return replaced

    def take(self, timeout: float, gather: float = 0.0) -> list[Frame]:
        """Wait up to `timeout` s for frames; then one per camera that has any (the next batch). [] on timeout
        or once closed.

        `gather` (s): once a frame waits, give the other cameras up to this long after its arrival to deliver
        theirs. Synchronised cameras publish a few ms apart; without it their frames of one instant would be
        split over two passes, each paying for a whole pass."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or any(self._queues.values()), timeout):
                return []
            if gather > 0 and not self._closed:
                first = min(q[0].received for q in self._queues.values() if q)
                self._cond.wait_for(lambda: self._closed or all(self._queues.values()),
                                    max(0.0, first + gather - time.monotonic()))
            if self._closed:
                return []
            frames = [q.popleft() for q in self._queues.values() if q]
            self._bytes -= sum(f.size for f in frames)
            self._cond.notify_all()  # a put waiting for room
            return frames

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def pending_bytes(self) -> int:
        with self._cond:
            return self._bytes

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
