"""hydranet replay: publish a rosbag2 recording (sqlite3 or MCAP) with its timing, QoS and /clock.

The library part is hydranet_ros.bags.replay.BagPlayer; this is its command line.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

PROG = "hydranet replay"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", type=Path, help="rosbag2 folder (with metadata.yaml) or a bare .mcap / .db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor (default: %(default)s)")
    p.add_argument("--start", type=float, default=0.0, metavar="S",
                   help="begin S seconds after the bag's first message (default: %(default)s)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="play S seconds of bag time")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these topics (default: all)")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                   help="publish bag topic FROM as TO (repeatable)")
    p.add_argument("--no-clock", dest="clock", action="store_false",
                   help="do not publish /clock (default: publish bag time, for nodes on use_sim_time)")
    p.add_argument("--clock-hz", type=float, default=20.0,
                   help="/clock rate while waiting between messages (default: %(default)s)")
    p.add_argument("--loop", action="store_true", help="play again and again until interrupted")
    p.add_argument("--loops", type=int, default=None, metavar="N", help="play N times")
    p.add_argument("--wait-for", action="append", default=[], metavar="TOPIC[:N]",
                   help="before playing, wait until TOPIC has a subscriber (N of them), e.g. the node under test; "
                        "repeatable")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for --wait-for subscribers (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _remaps(items: list[str]) -> dict[str, str]:
    remap = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"--remap wants FROM:=TO, got {item!r}")
        remap[src] = dst
    return remap


def _wait_counts(items: list[str]) -> dict[str, int]:
    counts = {}
    for item in items:
        topic, sep, n = item.partition(":")  # ':' cannot occur in a topic name
        if not topic or (sep and not n.isdigit()):
            raise ValueError(f"--wait-for wants TOPIC or TOPIC:N, got {item!r}")
        counts[topic] = int(n) if sep else 1
    return counts


def run(args: argparse.Namespace) -> int:
    import rclpy

    from hydranet_ros.ros.dds import use_shm_profile
    from hydranet_ros.ros.process import ros_process

    # Ctrl-C / SIGTERM stop the playback between messages, and the publishers still flush.
    with ros_process(use_shm_profile) as stop:
        return _play(args, rclpy.create_node("hydranet_replay"), stop)


def _play(args: argparse.Namespace, node: Any, stop: threading.Event) -> int:
    from hydranet_ros.bags.replay import BagPlayer
    from hydranet_ros.bags.rosbag import BagError
    from hydranet_ros.core.progress import show_progress

    try:
        try:
            player = BagPlayer(node, args.bag, rate=args.rate, start=args.start, duration=args.duration,
                               topics=args.topics, remap=_remaps(args.remap), clock=args.clock, loop=args.loop,
                               loops=args.loops, clock_hz=args.clock_hz)
            wait_for = _wait_counts(args.wait_for)
        except (BagError, ValueError) as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        for t in player.topics:
            name = t.topic if t.topic == t.bag_topic else f"{t.bag_topic} -> {t.topic}"
            print(f"  {name} ({t.msgtype}, {t.count} messages, {t.qos.reliability.name.lower()}, "
                  f"{t.qos.durability.name.lower()})", flush=True)
        try:
            player.wait_for_subscribers(list(wait_for), args.timeout, counts=wait_for, stop=stop)
        except TimeoutError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
        if stop.is_set():
            print(f"{PROG}: interrupted before playing", file=sys.stderr)
            return 130
        passes = player.loops or None
        with show_progress(total=player.total * passes if passes else None, unit="msg", desc=PROG,
                           enabled=not args.quiet, file=sys.stderr, dynamic_ncols=True) as bar:
            summary = player.play(on_message=lambda n: bar.update(n - bar.n), stop=stop)
        for topic, n in summary["published"].items():
            print(f"  {topic}: {n} messages")
        print(f"{PROG}: {summary['messages']} messages, {summary['loops']} complete pass(es), "
              f"{summary['bag_s']:.2f} s of bag time in {summary['wall_s']:.2f} s (x{summary['rate']:.2f})"
              + (", stopped" if summary["stopped"] else ""), flush=True)
    finally:
        node.destroy_node()
    return 0
