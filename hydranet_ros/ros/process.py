"""One way to run an rclpy process of ours (the node, replay, record, publish-image, the demo's recorder): the
middleware profile before init, init without rclpy's signal handlers, a stop event that SIGINT and SIGTERM set,
and a shutdown that happens whatever the body does.

rclpy's own handler raises KeyboardInterrupt wherever the process happens to be; inside the C conversion of a
large image that surfaces as a RuntimeError and a non-zero exit (seen in our tests), and a recorder stopped that
way may not close its bag. A flag checked between callbacks ends every run the same, clean way.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import rclpy
from rclpy.signals import SignalHandlerOptions


@contextmanager
def ros_process(profile: Callable[[], object] | None = None, args: list[str] | None = None,
                handle_signals: bool = True) -> Iterator[threading.Event]:
    """`with ros_process(dds.use_shm_profile) as stop:` ... `while not stop.is_set(): executor.spin_once(...)`.

    profile: applies the DDS profile (ros/dds.py), which must happen before init. args: the process's command
    line for rclpy (--ros-args ...; default: none). handle_signals: False leaves SIGINT as KeyboardInterrupt (for a
    process whose main work is elsewhere, like the demo); the event is then never set by a signal."""
    if profile is not None:
        profile()
    rclpy.init(args=args if args is not None else [sys.argv[0]], signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {}
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
