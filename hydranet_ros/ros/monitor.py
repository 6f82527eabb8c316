"""What the operator sees on /diagnostics: per camera counters and per-stage latencies (plain Python).

Each report covers the time since the previous one (rates, latencies, drops in the period) and adds totals since
start. Levels say what to do: WARN for no frames, malformed input, falling behind (stale drops, or frames older
than max_age_ms when published); ERROR when the engine fails.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

STAGES = ("decode", "preprocess", "infer", "postprocess", "publish")
DROP_REASONS = ("stale", "malformed", "busy")
OK, WARN, ERROR = 0, 1, 2


@dataclass
class _Period:
    received: int = 0
    published: int = 0
    drops: Counter = field(default_factory=Counter)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    ages_ms: list[float] = field(default_factory=list)
    engine_errors: int = 0


class CameraMonitor:
    """Thread-safe: the executor counts arrivals, the inference thread everything else."""

    def __init__(self, camera: str, topic: str) -> None:
        self.camera = camera
        self.topic = topic
        self._lock = threading.Lock()
        self._period = _Period()
        self._since = time.monotonic()
        self.totals: Counter = Counter()
        self.last_error = ""
        self.last_received = 0.0  # monotonic; 0: never
        self.focal_source = "none yet"

    def received(self) -> None:
        with self._lock:
            self._period.received += 1
            self.totals["received"] += 1
            self.last_received = time.monotonic()

    def dropped(self, reason: str, error: str = "") -> None:
        assert reason in DROP_REASONS, reason
        with self._lock:
            self._period.drops[reason] += 1
            self.totals[f"dropped_{reason}"] += 1
            if error:
                self.last_error = error

    def engine_failed(self, error: str) -> None:
        with self._lock:
            self._period.engine_errors += 1
            self.totals["engine_errors"] += 1
            self.last_error = error

    def stage(self, name: str, ms: float) -> None:
        with self._lock:
            self._period.stages[name].append(ms)

    def published(self, age_ms: float) -> None:
        with self._lock:
            self._period.published += 1
            self.totals["published"] += 1
            self._period.ages_ms.append(age_ms)

    def report(self, max_age_ms: float) -> tuple[int, str, list[tuple[str, str]]]:
        """(level, message, key/values) for the period since the last report; starts a new period."""
        now = time.monotonic()
        with self._lock:
            p, self._period = self._period, _Period()
            elapsed, self._since = max(now - self._since, 1e-6), now
            totals, last_error, last_received = Counter(self.totals), self.last_error, self.last_received
        values = [
            ("topic", self.topic),
            ("input_rate_hz", f"{p.received / elapsed:.2f}"),
            ("output_rate_hz", f"{p.published / elapsed:.2f}"),
            *((f"dropped_{r}", str(p.drops[r])) for r in DROP_REASONS),
            *((f"{k}_total", str(totals[k])) for k in ("received", "published", *(f"dropped_{r}" for r in
                                                                                    DROP_REASONS))),
            *(kv for s in STAGES for kv in _stats(f"latency_{s}_ms", p.stages[s])),
            *_stats("age_at_publish_ms", p.ages_ms),
            ("focal_length_from", self.focal_source),
            ("last_error", last_error),
        ]
        level, message = self._judge(p, totals, last_error, last_received, now, elapsed, max_age_ms)
        return level, message, values

    def _judge(self, p: _Period, totals: Counter, last_error: str, last_received: float, now: float,
               elapsed: float, max_age_ms: float) -> tuple[int, str]:
        if p.engine_errors:
            return ERROR, f"engine failure: {last_error}"
        if totals["received"] == 0:
            return WARN, f"no frames received on {self.topic}"
        if p.received == 0:
            return WARN, f"no frames for {now - last_received:.1f} s on {self.topic}"
        if p.drops["malformed"]:
            return WARN, f"{p.drops['malformed']} malformed frame(s): {last_error}"
        late = sum(a > max_age_ms for a in p.ages_ms)
        if p.drops["stale"] or late:
            return WARN, (f"falling behind: {p.drops['stale']} frame(s) dropped as stale, {late} published older "
                          f"than {max_age_ms:.0f} ms")
        if p.published == 0:
            return WARN, "frames arrive but nothing was published in this period"
        note = ""
        if p.drops["busy"]:
            note = f"; {p.drops['busy']} superseded by newer frames while the engine was busy (live mode)"
        if self.focal_source == "canonical":
            return WARN, "no camera_info and no fallback_fx: metric depth assumes the model's canonical focal length"
        return OK, f"{p.published / elapsed:.1f} Hz out of {p.received / elapsed:.1f} Hz in{note}"


def _stats(key: str, values: list[float]) -> list[tuple[str, str]]:
    """Mean and max of a period as two numeric values (machines read them too); "n/a" for an empty period."""
    if not values:
        return [(key, "n/a"), (f"{key}_max", "n/a")]
    return [(key, f"{np.mean(values):.2f}"), (f"{key}_max", f"{np.max(values):.2f}")]
