"""What the operator sees on /diagnostics: per camera counters and per-stage latencies (plain Python).

Each report covers the time since the previous one (rates, latencies, drops in the period) and adds totals since
start. Every frame is accounted for. A publisher's frame either never reached the node's DDS reader
(`lost_in_transport`: DDS's own count of samples lost on the way or withdrawn by the publisher's history before
delivery), or reached it but was overwritten there before the executor took it (`dropped_overrun`, live mode: the
gaps in the publisher's sequence numbers that DDS does not count as lost), or was received; a received frame is
published or dropped for one reason (`stale`, `malformed`, `busy`). Levels say what to do: WARN for no frames,
frames lost on the way, malformed input or camera_info, falling behind (stale drops); ERROR when the engine fails.

Ages: `age_at_publish_ms` is the time from the frame's reception (DDS) to the hand-over of its first result to
DDS, on this machine's monotonic clock: what max_age_ms bounds in live mode. `stamp_age_at_publish_ms` is the
node's clock minus the frame's header stamp at that moment: it includes the camera's own latency and transport,
and is only meaningful where the camera's clock and the node's agree.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hydranet_ros.core.mounting import Mounting

STAGES = ("decode", "preprocess", "infer", "postprocess", "publish")
DROP_REASONS = ("stale", "malformed", "busy", "overrun")  # overrun: derived from gaps and losses, see _overrun
OK, WARN, ERROR = 0, 1, 2


@dataclass
class _Period:
    received: int = 0
    published: int = 0
    lost: int = 0
    gaps: int = 0
    info_rejected: int = 0
    drops: Counter = field(default_factory=Counter)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    ages_ms: list[float] = field(default_factory=list)
    stamp_ages_ms: list[float] = field(default_factory=list)
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
        self._reported_overrun = 0
        self.last_error = ""
        self.last_received = 0.0  # monotonic; 0: never
        self.last_info_error = ""
        self.focal_source = "none yet"
        self.input_qos = ""  # the subscription's reliability now (set by the node)
        self.loss_hint = ""  # what to configure when frames are lost on the way (set by the node)
        self.behind_hint = ""  # why frames cannot make max_age_ms, when the node knows (set by the node)
        self.mounting: Mounting | None = None  # where the camera sits, for the last frame (set by the node)
        self.mounting_on_tf_static = False  # the node states that mounting on /tf_static (set by the node)
        self.depth_scale = (1.0, "network", "no frame yet")  # (scale, road | held | network, why not road)

    def received(self) -> None:
        with self._lock:
            self._period.received += 1
            self.totals["received"] += 1
            self.last_received = time.monotonic()

    def lost(self, count: int) -> None:
        """DDS reports `count` samples that will never reach the node (its message-lost status)."""
        with self._lock:
            self._period.lost += count
            self.totals["lost_in_transport"] += count

    def gap(self, count: int) -> None:
        """`count` sequence numbers of a publisher were skipped between two frames the node took."""
        with self._lock:
            self._period.gaps += count
            self.totals["sequence_gaps"] += count

    def _overrun(self, totals: Counter) -> int:
        # Gaps DDS does not count as lost were delivered, then overwritten in the reader's history. Both counts
        # arrive by different paths (a gap with the next frame, a loss as an event), so they are compared as totals.
        return max(0, totals["sequence_gaps"] - totals["lost_in_transport"])

    def info_rejected(self, error: str) -> None:
        with self._lock:
            self._period.info_rejected += 1
            self.totals["camera_info_rejected"] += 1
            self.last_info_error = error

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

    def published(self, age_ms: float, stamp_age_ms: float | None = None) -> None:
        """A frame's results went out `age_ms` after its reception (and `stamp_age_ms` after its header stamp)."""
        with self._lock:
            self._period.published += 1
            self.totals["published"] += 1
            self._period.ages_ms.append(age_ms)
            if stamp_age_ms is not None:
                self._period.stamp_ages_ms.append(stamp_age_ms)

    def report(self, max_age_ms: float | None) -> tuple[int, str, list[tuple[str, str]]]:
        """(level, message, key/values) for the period since the last report; starts a new period. `max_age_ms`:
        the live-mode bound, None in replay mode (where every frame is processed, however late)."""
        now = time.monotonic()
        with self._lock:
            p, self._period = self._period, _Period()
            elapsed, self._since = max(now - self._since, 1e-6), now
            totals, last_error, last_received = Counter(self.totals), self.last_error, self.last_received
            last_info_error = self.last_info_error
            overrun = self._overrun(totals)
            p.drops["overrun"], self._reported_overrun = overrun - self._reported_overrun, overrun
        totals["dropped_overrun"] = overrun
        counted = ("received", "published", *(f"dropped_{r}" for r in DROP_REASONS), "lost_in_transport",
                   "camera_info_rejected")
        values = [
            ("topic", self.topic),
            ("input_qos", self.input_qos),
            ("input_rate_hz", f"{p.received / elapsed:.2f}"),
            ("output_rate_hz", f"{p.published / elapsed:.2f}"),
            *((f"dropped_{r}", str(p.drops[r])) for r in DROP_REASONS),
            ("lost_in_transport", str(p.lost)),
            ("camera_info_rejected", str(p.info_rejected)),
            *((f"{k}_total", str(totals[k])) for k in counted),
            *(kv for s in STAGES for kv in _stats(f"latency_{s}_ms", p.stages[s], percentiles=True)),
            *_stats("age_at_publish_ms", p.ages_ms, percentiles=True),
            *_stats("stamp_age_at_publish_ms", p.stamp_ages_ms),
            ("focal_length_from", self.focal_source),
            *_mounting_values(self.mounting),
            ("mounting_on_tf_static", str(self.mounting_on_tf_static).lower()),
            ("depth_scale", f"{self.depth_scale[0]:.3f}"),
            ("depth_scale_from", self.depth_scale[1]),
            ("depth_scale_note", self.depth_scale[2]),
            ("last_error", last_error),
            ("last_camera_info_error", last_info_error),
        ]
        level, message = self._judge(p, totals, last_error, last_received, now, elapsed, max_age_ms)
        return level, message, values

    def _judge(self, p: _Period, totals: Counter, last_error: str, last_received: float, now: float,
               elapsed: float, max_age_ms: float | None) -> tuple[int, str]:
        if p.engine_errors:
            return ERROR, f"engine failure: {last_error}"
        if totals["received"] == 0:
            return WARN, f"no frames received on {self.topic}" + (
                f" ({totals['lost_in_transport']} lost on the way: {self.loss_hint})"
                if totals["lost_in_transport"] else "")
        if p.lost:
            share = p.lost / (p.lost + p.received)
            return WARN, f"{p.lost} frame(s) ({share:.0%}) lost before reaching the node: {self.loss_hint}"
        if p.received == 0:
            return WARN, f"no frames for {now - last_received:.1f} s on {self.topic}"
        if p.drops["malformed"]:
            return WARN, f"{p.drops['malformed']} malformed frame(s): {last_error}"
        if p.info_rejected:
            return WARN, f"{p.info_rejected} camera_info message(s) rejected: {self.last_info_error}"
        if max_age_ms is not None and p.drops["stale"]:
            why = f": {self.behind_hint}" if self.behind_hint else ""
            return WARN, (f"falling behind: {p.drops['stale']} frame(s) dropped as stale, they could not be "
                          f"published within max_age_ms {max_age_ms:.0f} of their arrival{why}")
        if p.published == 0:
            return WARN, "frames arrive but nothing was published in this period"
        note = ""
        if p.drops["busy"] or p.drops["overrun"]:
            note = (f"; {p.drops['busy'] + p.drops['overrun']} superseded by newer frames while the node was busy "
                    f"(live mode; {p.drops['overrun']} of them already in DDS)")
        if self.focal_source == "canonical":
            return WARN, "no camera_info and no fallback_fx: metric depth assumes the model's canonical focal length"
        return OK, f"{p.published / elapsed:.1f} Hz out of {p.received / elapsed:.1f} Hz in{note}"


def _mounting_values(m: Mounting | None) -> list[tuple[str, str]]:
    if m is None:
        return [("mounting_from", "none"), ("mounting_height_m", "n/a"), ("mounting_pitch_deg", "n/a")]
    return [("mounting_from", m.source), ("mounting_height_m", f"{m.height:.3f}"),
            ("mounting_pitch_deg", f"{m.pitch_deg:.2f}")]


def _stats(key: str, values: list[float], percentiles: bool = False) -> list[tuple[str, str]]:
    """Mean (and p50, p95) and max of a period as numeric values (machines read them too); "n/a" for an empty
    period."""
    suffixes = ("", "_p50", "_p95", "_max") if percentiles else ("", "_max")
    if not values:
        return [(key + s, "n/a") for s in suffixes]
    stats = {"": np.mean(values), "_p50": np.percentile(values, 50), "_p95": np.percentile(values, 95),
             "_max": np.max(values)}
    return [(key + s, f"{stats[s]:.2f}") for s in suffixes]
