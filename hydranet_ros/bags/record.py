"""Record topics into a rosbag2 bag (MCAP by default) without rosbag2: what `hydranet record` and the demo run.

Lossless by construction: subscriptions are raw (rclpy hands over the CDR bytes as received) and those bytes go
into the bag unchanged; message definitions come from the installed .msg files (`bags.typestore`), so any
installed type can be recorded, vision_msgs included. Each subscription's QoS follows the topic's publishers, as
`ros2 bag record` does: reliable only if all of them are (a reliable subscription would not match a best-effort
publisher), transient-local only if all are, and keep-all history so that a burst is queued, not dropped.

Topics are found by scanning the graph on a timer, so a publisher that starts after the recorder is recorded from
its first message (once discovered). Messages are stamped with the node's clock at reception: sim time on
`use_sim_time`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from hydranet_ros.bags.rosbag import BagError, ensure_type, message_class, typestore

# Recorded with --all only when asked: every node has them, and they are about the recording, not the system.
DEFAULT_EXCLUDE = ("/rosout", "/parameter_events")
STORAGES = ("mcap", "sqlite3")


def bag_qos(profile: QoSProfile) -> Any:
    """rclpy QoSProfile -> rosbags `Qos`, for a connection's offered_qos_profiles (enum names are the same)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def enum(kind: Any, policy: Any) -> Any:
        return kind.__members__.get(policy.name, kind.UNKNOWN)

    def duration(d: Any) -> Any:
        return QosTime(*divmod(d.nanoseconds, 1_000_000_000))

    return Qos(enum(QosHistory, profile.history), profile.depth, enum(QosReliability, profile.reliability),
               enum(QosDurability, profile.durability), duration(profile.deadline), duration(profile.lifespan),
               enum(QosLiveliness, profile.liveliness), duration(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def subscription_qos(offered: list[QoSProfile]) -> QoSProfile:
    """A subscription that matches every one of these publishers and queues rather than drops."""
    reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    return QoSProfile(history=HistoryPolicy.KEEP_ALL,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


@dataclass
class RecordedTopic:
    topic: str
    msgtype: str
    count: int = 0
    bytes: int = 0
    first_ns: int = 0  # reception times (node clock)
    last_ns: int = 0

    @property
    def rate_hz(self) -> float:
        span = (self.last_ns - self.first_ns) / 1e9
        return (self.count - 1) / span if self.count > 1 and span > 0 else 0.0

    @property
    def rate_text(self) -> str:
        """The rate where it means one: a stream of at least 5 messages over at least a second. A burst (a
        lifecycle transition's two events 8 ms apart, a latched message) has no rate: it showed as 255.6 Hz."""
        span = (self.last_ns - self.first_ns) / 1e9
        return f"{self.rate_hz:.1f}" if self.count >= 5 and span >= 1.0 else "–"


@dataclass
class RecordSummary:
    path: Path
    storage: str
    topics: list[RecordedTopic] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # asked for, but no publisher was seen

    @property
    def messages(self) -> int:
        return sum(t.count for t in self.topics)

    def table(self) -> str:
        """A plain-text table: one row per topic (count, size, rate), a total, and the bag's path."""
        rows = [("topic", "type", "messages", "MB", "Hz")]
        rows += [(t.topic, t.msgtype, str(t.count), f"{t.bytes / 1e6:.2f}", t.rate_text) for t in self.topics]
        rows.append(("total", "", str(self.messages), f"{sum(t.bytes for t in self.topics) / 1e6:.2f}", ""))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        if self.missing:
            lines.append(f"never published (not recorded): {', '.join(self.missing)}")
        lines.append(f"recorded to {self.path} ({self.storage})")
        return "\n".join(lines)


class BagRecorder:
    """Records topics seen on `node`'s graph into a new bag at `out`. The caller spins `node`; call close()."""

    def __init__(self, node: Node, out: str | Path, *, topics: list[str] | None = None,
                 exclude: list[str] | None = None, storage: str = "mcap", scan_period: float = 0.2) -> None:
        """`topics`: names to record (None: every topic with a publisher). `exclude`: names or regular expressions
        (full match) never to record; with topics=None, /rosout and /parameter_events are excluded as well.
        Raises BagError if `out` exists or cannot be created, ValueError for a bad storage or pattern."""
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        self.node = node
        self.path = Path(out)
        self.storage = storage
        if self.path.exists():
            raise BagError(f"{self.path} exists already: a recording never overwrites; choose a new name")
        patterns = list(exclude or []) + (list(DEFAULT_EXCLUDE) if topics is None else [])
        try:
            self._exclude = [re.compile(p) for p in patterns]
        except re.error as exc:
            raise ValueError(f"bad --exclude pattern: {exc}") from exc
        self._wanted = None if topics is None else {node.resolve_topic_name(t) for t in topics}
        self._writer = Writer(self.path, version=9,
                              storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f"cannot create {self.path}: {exc}") from exc
        self._store = typestore()
        self._lock = threading.Lock()  # the writer is shared by every subscription callback and close()
        self._closed = False
        self._subscriptions: dict[str, Any] = {}
        self._warned: set[str] = set()  # topics with a publisher that the subscription does not match
        self._ignored: set[str] = set()  # topics that cannot be recorded (already said why)
        self.recorded: dict[str, RecordedTopic] = {}
        self.counts: dict[str, int] = {}
        # On the steady clock: with use_sim_time a node's default timers stand still until /clock runs.
        self._timer = node.create_timer(scan_period, self._scan, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._scan()

    def _selected(self, topic: str) -> bool:
        if self._wanted is not None and topic not in self._wanted:
            return False
        return not any(p.fullmatch(topic) for p in self._exclude)

    def _scan(self) -> None:
        """Subscribe to every selected topic that has publishers and is not recorded yet."""
        if self._closed:
            return
        for topic, _ in self.node.get_topic_names_and_types():
            if topic in self._ignored or not self._selected(topic):
                continue
            infos = self.node.get_publishers_info_by_topic(topic)
            if topic in self._subscriptions:
                self._check_late_publishers(topic, infos)
            elif infos:
                self._subscribe(topic, infos)

    def _subscribe(self, topic: str, infos: list[Any]) -> None:
        log = self.node.get_logger()
        types = sorted({i.topic_type for i in infos})
        if len(types) > 1:
            self._ignored.add(topic)
            log.error(f"not recording {topic}: its publishers disagree on the type ({', '.join(types)})")
            return
        msgtype = types[0]
        try:
            cls = message_class(msgtype)
            ensure_type(self._store, msgtype)
        except BagError as exc:
            self._ignored.add(topic)
            log.error(f"not recording {topic}: {exc}")
            return
        offered = [i.qos_profile for i in infos]
        qos = subscription_qos(offered)
        with self._lock:  # so that close() cannot run between the connection and its subscription
            if self._closed:
                return
            conn = self._writer.add_connection(topic, msgtype, typestore=self._store,
                                               offered_qos_profiles=[bag_qos(q) for q in offered])
            self.recorded[topic] = RecordedTopic(topic, msgtype)
            self.counts[topic] = 0
            self._subscriptions[topic] = self.node.create_subscription(
                cls, topic, partial(self._on_message, topic, conn), qos, raw=True)
        log.info(f"recording {topic} ({msgtype}, {qos.reliability.name.lower()}, {qos.durability.name.lower()})")

    def _check_late_publishers(self, topic: str, infos: list[Any]) -> None:
        """A publisher that appears later with a QoS the subscription cannot match is not recorded: say so once."""
        q = self._subscriptions[topic].qos_profile
        unmatched = [i.node_name for i in infos
                     if (q.reliability == ReliabilityPolicy.RELIABLE
                         and i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT)
                     or (q.durability == DurabilityPolicy.TRANSIENT_LOCAL
                         and i.qos_profile.durability == DurabilityPolicy.VOLATILE)]
        if unmatched and topic not in self._warned:
            self._warned.add(topic)
            self.node.get_logger().warning(
                f"{topic}: not recording what {', '.join(unmatched)} publish: they started after the recording "
                f"subscription ({q.reliability.name.lower()}, {q.durability.name.lower()}) and offer less")

    def _on_message(self, topic: str, conn: Any, data: bytes) -> None:
        now = self.node.get_clock().now().nanoseconds
        with self._lock:
            if self._closed:
                return
            self._writer.write(conn, now, data)
            rec = self.recorded[topic]
            rec.count += 1
            rec.bytes += len(data)
            rec.first_ns = rec.first_ns if rec.count > 1 else now
            rec.last_ns = now
            self.counts[topic] = rec.count

    def close(self) -> RecordSummary:
        """Stop recording and finish the bag (metadata.yaml). Call before the node is destroyed. Idempotent."""
        with self._lock:
            closing = not self._closed
            self._closed = True
        if closing:
            self.node.destroy_timer(self._timer)
            with self._lock:
                for sub in self._subscriptions.values():
                    self.node.destroy_subscription(sub)
                self._writer.close()
        missing = sorted((self._wanted or set()) - set(self.recorded))
        return RecordSummary(self.path, self.storage, list(self.recorded.values()), missing)
