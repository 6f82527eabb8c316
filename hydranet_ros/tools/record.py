"""hydranet record: record topics into a rosbag2 bag (MCAP by default), losslessly, until Ctrl-C.

The library part is hydranet_ros.bags.record.BagRecorder; this is its command line.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROG = "hydranet record"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="the bag to create (a folder: metadata.yaml + the storage file)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--topics", nargs="+", metavar="TOPIC", help="topics to record (as they appear)")
    which.add_argument("--all", action="store_true",
                       help="every topic with a publisher, but /rosout, /parameter_events and --exclude")
    p.add_argument("--exclude", nargs="+", default=[], metavar="PATTERN",
                   help="topic names or regular expressions (full match) not to record")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="(default: %(default)s)")
    p.add_argument("--use-sim-time", action="store_true",
                   help="stamp messages with /clock time instead of the system clock")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (wall time)")
    p.add_argument("--max-messages", type=int, default=None, metavar="N", help="stop after N messages in all")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from hydranet_ros.ros.dds import use_shm_profile
    from hydranet_ros.ros.process import ros_process

    if args.duration is not None and not args.duration > 0:
        print(f"{PROG}: --duration must be > 0", file=sys.stderr)
        return 2
    if args.max_messages is not None and args.max_messages < 1:
        print(f"{PROG}: --max-messages must be >= 1", file=sys.stderr)
        return 2
    # SIGINT / SIGTERM end the recording, and the bag is still closed properly.
    with ros_process(use_shm_profile) as stop:
        node = rclpy.create_node("hydranet_record", parameter_overrides=[
            Parameter("use_sim_time", Parameter.Type.BOOL, bool(args.use_sim_time))])
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            return _record(args, node, executor, stop)
        finally:
            executor.shutdown()
            node.destroy_node()


def _record(args: argparse.Namespace, node: Any, executor: Any, stop: threading.Event) -> int:
    from hydranet_ros.bags.record import BagRecorder
    from hydranet_ros.bags.rosbag import BagError
    from hydranet_ros.core.progress import show_progress

    try:
        recorder = BagRecorder(node, args.out, topics=None if args.all else args.topics, exclude=args.exclude,
                               storage=args.storage)
    except (BagError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    print(f"{PROG}: recording to {args.out}; Ctrl-C to stop", flush=True)
    end = time.monotonic() + args.duration if args.duration else None
    try:
        with show_progress(unit="msg", desc=PROG, enabled=not args.quiet, file=sys.stderr, dynamic_ncols=True) as bar:
            while not stop.is_set() and (end is None or time.monotonic() < end):
                executor.spin_once(timeout_sec=0.1)
                n = sum(recorder.counts.values())
                bar.update(n - bar.n)
                if args.max_messages and n >= args.max_messages:
                    break  # exactly N: no drain
            else:  # stopped by a signal or --duration
                _drain(executor, recorder)
    finally:
        summary = recorder.close()
    print(summary.table(), flush=True)
    return 0


def _drain(executor: Any, recorder: Any, idle_spins: int = 3, limit_s: float = 1.0) -> None:
    """Write what has arrived already: messages waiting in the subscriptions when the stop came are not lost."""
    end, idle = time.monotonic() + limit_s, 0
    while idle < idle_spins and time.monotonic() < end:
        before = sum(recorder.counts.values())
        executor.spin_once(timeout_sec=0.02)
        idle = idle + 1 if sum(recorder.counts.values()) == before else 0
