"""Where camera frames wait between the executor (which receives them) and the inference thread (plain Python).

Two policies, one per mode:

* live: one slot per camera. A new frame replaces an unprocessed one (counted as dropped "busy": the engine was
  still working on the previous batch), so nothing can queue up and each pass sees the freshest frame of every
  camera. Latency stays bounded by about two pass times, whatever the camera rate.
* replay: a FIFO per camera. Nothing is dropped; each pass takes the oldest waiting frame of every camera, so
  every frame is processed, in the order it arrived.
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
    received: float  # time.monotonic() at arrival


class FrameInbox:
    def __init__(self, cameras: list[str], mode: str) -> None:
        if mode not in ("live", "replay"):
            raise ValueError(f"mode must be live or replay, got {mode!r}")
        self.mode = mode
        self._queues: dict[str, deque[Frame]] = {c: deque() for c in cameras}
        self._cond = threading.Condition()
        self._closed = False

    def put(self, camera: str, msg: Any) -> bool:
        """Add a frame; True when it replaced an unprocessed one (live mode's "busy" drop)."""
        frame = Frame(camera, msg, time.monotonic())
        with self._cond:
            q = self._queues[camera]
            replaced = self.mode == "live" and bool(q)
            if replaced:
                q.clear()
            q.append(frame)
            self._cond.notify()
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
            return [q.popleft() for q in self._queues.values() if q]

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
