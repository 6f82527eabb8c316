"""Publish a rosbag2 recording with its original timing: what `hydranet replay` and the demo run.

Messages are never deserialised: rosbags hands out the CDR bytes that were recorded and rclpy publishes bytes as
they are (`Publisher.publish(bytes)`), so a replay costs no conversion and cannot change a field. Publishing needs
no spinning, so `play()` runs in whatever thread calls it while the node's executor (if any) runs elsewhere.

Timing: message i goes out `(t_i - t_begin) / rate` seconds after the pass began, t_i being the bag's (receive)
timestamp. /clock carries bag time, published just before each message and at `clock_hz` while waiting between
messages, so that nodes on `use_sim_time` see time advance and their timers run (as `ros2 bag play --clock`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rclpy.duration import Duration
from rclpy.exceptions import NameValidationException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from hydranet_ros.bags.rosbag import BagError, ensure_type, message_class, open_reader, typestore

# KEEP_LAST depth for best-effort topics recorded without a usable depth (what `ros2 bag play` uses by default).
DEFAULT_DEPTH = 10


def replay_qos(profiles: Sequence[Any]) -> QoSProfile:
    """The publisher QoS for a topic recorded with these offered profiles (rosbags `Qos`).

    Reliability and durability are those recorded when all publishers agreed; otherwise (or with no profile) reliable
    and volatile, which every subscriber accepts. Reliable topics keep all history: a slow subscriber then delays
    the publisher instead of losing messages. Best-effort topics keep the recorded depth, as their publisher did."""
    reliabilities = {p.reliability.name for p in profiles}
    durabilities = {p.durability.name for p in profiles}
    best_effort = reliabilities == {"BEST_EFFORT"}
    durability = DurabilityPolicy.TRANSIENT_LOCAL if durabilities == {"TRANSIENT_LOCAL"} else DurabilityPolicy.VOLATILE
    if not best_effort:
        return QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                          durability=durability)
    depth = max((p.depth for p in profiles if p.history.name == "KEEP_LAST" and p.depth > 0), default=DEFAULT_DEPTH)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=durability)


@dataclass
class PlayedTopic:
    """One topic that a pass publishes."""

    bag_topic: str  # as recorded
    topic: str  # as published (after remapping)
    msgtype: str
    count: int  # messages in one pass (after start/duration)
    qos: QoSProfile


class BagPlayer:
    """Publishes a bag's messages (raw CDR) on `node` with the recorded timing, QoS and, optionally, /clock."""

    def __init__(self, node: Node, bag: str | Path, *, rate: float = 1.0, start: float = 0.0,
                 duration: float | None = None, topics: list[str] | None = None,
                 remap: dict[str, str] | None = None, clock: bool = True, loop: bool = False,
                 loops: int | None = None, clock_hz: float = 20.0) -> None:
        """`start`, `duration`: seconds of bag time from the bag's first message. `loops`: passes to play (default:
        1, or until stopped with `loop`). Raises BagError (unreadable bag, unknown topic, type not installed) or
        ValueError (a bad parameter)."""
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if not start >= 0:
            raise ValueError(f"start must be >= 0 s, got {start}")
        if duration is not None and not duration > 0:
            raise ValueError(f"duration must be > 0 s, got {duration}")
        if loops is not None and loops < 1:
            raise ValueError(f"loops must be >= 1, got {loops}")
        if not clock_hz > 0:
            raise ValueError(f"clock_hz must be > 0, got {clock_hz}")
        self.node = node
        self.bag = Path(bag)
        self.rate = rate
        self.loops = loops if loops is not None else (0 if loop else 1)  # 0: until stopped
        self.clock_hz = clock_hz
        remap = dict(remap or {})
        self._store = typestore()
        # Everything that can be refused is checked before the first publisher exists on the caller's node.
        by_topic, selected, counts = self._read_window(topics or [], remap, start, duration)
        self.topics = self._plan_topics(by_topic, selected, remap, counts)
        self.total = sum(t.count for t in self.topics)
        if self.total == 0:
            raise BagError(f"nothing to play: no message of {', '.join(selected)} in the selected time window")
        self._create_publishers(by_topic)
        self._clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            # Reliable matches both the best-effort /clock subscription of rclcpp/rclpy time sources and a reliable one.
            self._clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE))
            self._clock_msg = Clock()
        self._last_clock = -1

    def _read_window(self, topics: list[str], remap: dict[str, str], start: float, duration: float | None
                     ) -> tuple[dict[str, list[Any]], list[str], dict[str, int]]:
        """The bag's connections per topic, the selected topics, and each one's messages in the time window."""
        reader = open_reader(self.bag, self._store)
        try:
            if not reader.is2:
                raise BagError(f"{self.bag} is a ROS 1 bag: its messages are not CDR; convert it first "
                               "(rosbags-convert)")
            if reader.message_count == 0:
                raise BagError(f"{self.bag} has no messages")
            by_topic: dict[str, list[Any]] = {}
            for conn in reader.connections:
                by_topic.setdefault(conn.topic, []).append(conn)
            in_bag = sorted(by_topic)
            unknown = [t for t in [*topics, *remap] if t not in by_topic]
            if unknown:
                raise BagError(f"not in {self.bag}: {', '.join(unknown)}; its topics are: {', '.join(in_bag)}")
            selected = list(dict.fromkeys(topics)) if topics else in_bag
            self._t_begin = reader.start_time + round(start * 1e9)
            if self._t_begin >= reader.end_time:
                raise ValueError(f"start {start} s is past the end of {self.bag} "
                                 f"({(reader.end_time - reader.start_time) / 1e9:.3f} s of messages)")
            self._t_end = reader.end_time if duration is None else min(reader.end_time,
                                                                       self._t_begin + round(duration * 1e9))
            self._connections = [c for t in selected for c in by_topic[t]]
            return by_topic, selected, self._count(reader, start > 0 or duration is not None)
        finally:
            reader.close()

    def _plan_topics(self, by_topic: dict[str, list[Any]], selected: list[str], remap: dict[str, str],
                     counts: dict[str, int]) -> list[PlayedTopic]:
        """What each selected topic is published as: its name after remapping, type, count and QoS."""
        planned: list[PlayedTopic] = []
        self._classes: dict[str, type] = {}
        for bag_topic in selected:
            conns = by_topic[bag_topic]
            types = sorted({c.msgtype for c in conns})
            if len(types) > 1:
                raise BagError(f"{bag_topic} has several types in {self.bag} ({', '.join(types)}): select the others")
            msgtype, topic = types[0], remap.get(bag_topic, bag_topic)
            if any(t.topic == topic for t in planned):
                raise BagError(f"{bag_topic} and another topic would both be published as {topic}")
            self._classes[bag_topic] = message_class(msgtype)
            self._warn_if_redefined(bag_topic, msgtype, conns)
            qos = replay_qos([p for c in conns for p in getattr(c.ext, "offered_qos_profiles", [])])
            planned.append(PlayedTopic(bag_topic, topic, msgtype, counts.get(bag_topic, 0), qos))
        return planned

    def _create_publishers(self, by_topic: dict[str, list[Any]]) -> None:
        """One publisher per played topic; none is left behind when one cannot be created."""
        self._publishers: dict[str, Any] = {}  # published topic -> publisher
        self._pub_of_conn: dict[int, tuple[Any, str]] = {}  # connection id -> (publisher, published topic)
        for t in self.topics:
            try:
                pub = self.node.create_publisher(self._classes[t.bag_topic], t.topic, t.qos)
            except NameValidationException as exc:
                for created in self._publishers.values():
                    self.node.destroy_publisher(created)
                raise ValueError(f"cannot publish {t.bag_topic} as {t.topic!r}: {exc}") from exc
            self._publishers[t.topic] = pub
            for c in by_topic[t.bag_topic]:
                self._pub_of_conn[c.id] = (pub, t.topic)

    def _warn_if_redefined(self, topic: str, msgtype: str, conns: list[Any]) -> None:
        """Raw bytes mean the same only to subscribers of the same definition: warn when the bag's differs."""
        try:
            ensure_type(self._store, msgtype)
            installed = self._store.hash_rihs01(msgtype)
        except BagError:  # no .msg installed (a package built from IDL only): nothing to compare against
            return
        if {c.digest for c in conns if c.digest} - {installed}:
            self.node.get_logger().warning(f"{topic}: the bag's {msgtype} definition differs from the installed one; "
                                           "subscribers may fail to decode it")

    def _count(self, reader: Any, windowed: bool) -> dict[str, int]:
        """Messages per bag topic in one pass. The metadata has them for the whole bag; a window needs a read."""
        counts: dict[str, int] = {}
        if not windowed:
            for c in self._connections:
                counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
            return counts
        for conn, _, _ in reader.messages(self._connections, start=self._t_begin, stop=self._t_end):
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
        return counts

    def wait_for_subscribers(self, topics: list[str], timeout: float, *, counts: dict[str, int] | None = None,
                             stop: threading.Event | None = None) -> None:
        """Return once each topic has a subscriber (`counts[topic]` of them, if given), or as soon as `stop` is set;
        TimeoutError naming the first topic that has too few after `timeout` s.

        For a played topic and /clock this is the publisher's matched count (the DDS writer knows the reader, so
        the first message reaches it); for any other topic, the graph's subscriber count."""
        deadline = time.monotonic() + timeout
        pause = stop or threading.Event()  # without `stop`, never set: a plain 20 ms sleep
        for topic in topics:
            want = (counts or {}).get(topic, 1)
            while (have := self._subscribers(topic)) < want:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{have} of {want} subscriber(s) on {topic} after {timeout:g} s")
                if pause.wait(0.02):
                    return

    def _subscribers(self, topic: str) -> int:
        pub = self._clock_pub if topic == "/clock" else self._publishers.get(topic)
        return pub.get_subscription_count() if pub is not None else self.node.count_subscribers(topic)

    def play(self, *, on_message: Callable[[int], None] | None = None,
             stop: threading.Event | None = None, ack_timeout: float = 5.0) -> dict[str, Any]:
        """Publish every selected message, `loops` times (or until `stop` is set), then wait up to `ack_timeout` s
        for reliable subscribers to acknowledge all. Blocking. `on_message(n)`: after each message, n published
        so far. Returns {"published": {topic: n}, "messages", "loops" (complete passes), "wall_s", "bag_s" (bag
        time played), "rate" (bag_s / wall_s), "stopped"}."""
        stop = stop or threading.Event()
        published = {t.topic: 0 for t in self.topics}
        n, passes, bag_ns = 0, 0, 0
        t0 = time.monotonic()
        while not stop.is_set() and (self.loops == 0 or passes < self.loops):
            self._last_clock = -1  # a new pass may send time backwards: that is a jump, not a regression
            reader = open_reader(self.bag, self._store)
            try:
                wall_start = time.monotonic()
                last_ts = self._t_begin
                # This reader's own connection objects (the ones from __init__ belong to a closed reader).
                conns = [c for c in reader.connections if c.id in self._pub_of_conn]
                for conn, ts, raw in reader.messages(conns, start=self._t_begin, stop=self._t_end):
                    if not self._wait_until(wall_start + (ts - self._t_begin) / 1e9 / self.rate, wall_start, ts, stop):
                        break
                    self._publish_clock(ts)
                    pub, topic = self._pub_of_conn[conn.id]
                    pub.publish(raw if isinstance(raw, bytes) else bytes(raw))
                    published[topic] += 1
                    n += 1
                    last_ts = ts
                    if on_message is not None:
                        on_message(n)
                bag_ns += last_ts - self._t_begin
            finally:
                reader.close()
            if not stop.is_set():
                passes += 1
        wall = time.monotonic() - t0
        # Reliable messages still in flight would be lost if the process exited now.
        for pub in self._publishers.values():
            pub.wait_for_all_acked(Duration(seconds=0.5 if stop.is_set() else ack_timeout))
        return {"published": published, "messages": n, "loops": passes, "wall_s": wall, "bag_s": bag_ns / 1e9,
                "rate": bag_ns / 1e9 / wall if wall > 0 else 0.0, "stopped": stop.is_set()}

    def _wait_until(self, target: float, wall_start: float, ts: int, stop: threading.Event) -> bool:
        """Sleep until `target` (monotonic s), advancing /clock meanwhile; False if stopped."""
        period = 1.0 / self.clock_hz
        while (left := target - time.monotonic()) > 0:
            if self._clock_pub is not None:
                elapsed_ns = round((time.monotonic() - wall_start) * self.rate * 1e9)
                self._publish_clock(min(ts, self._t_begin + elapsed_ns))
            if stop.wait(min(left, period)):
                return False
        return not stop.is_set()

    def _publish_clock(self, ns: int) -> None:
        if self._clock_pub is None or ns <= self._last_clock:
            return  # never backwards within a pass, and once per instant
        self._last_clock = ns
        self._clock_msg.clock.sec, self._clock_msg.clock.nanosec = divmod(ns, 1_000_000_000)
        self._clock_pub.publish(self._clock_msg)
