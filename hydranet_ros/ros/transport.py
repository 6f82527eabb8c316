"""What happens to frames before they reach the node (plain Python, no rclpy).

* `input_reliability`: which reliability a camera's subscription asks for. `auto` asks for reliable whenever every
  publisher of the topic offers it: then fragments lost on the way are repaired, which is what lets a camera in
  its stock configuration deliver large frames (a best-effort subscription downgrades even a reliable camera's
  connection to best effort). A reliable subscription does not match a best-effort publisher, so as soon as one
  appears, `auto` goes best effort.
* `SequenceGaps`: frames the node never took, from the publishers' sequence numbers (every DDS writer numbers its
  samples 1, 2, 3, ...; rclpy hands the number of each message to a callback that asks for the message info).
  DDS itself counts the samples lost before they reached the reader (the message-lost event); the gaps beyond
  those are frames that reached the reader and were overwritten in its history before the executor took them.
"""

from __future__ import annotations

from collections import OrderedDict

RELIABLE, BEST_EFFORT = "reliable", "best_effort"


def input_reliability(setting: str, offered: list[str]) -> str:
    """The reliability to subscribe with, given the setting (auto, reliable, best_effort) and what each current
    publisher offers. auto with no publisher yet: reliable, so that the first frames of a reliable camera or bag
    are already repaired; a best-effort publisher, once seen, turns it to best effort."""
    if setting in (RELIABLE, BEST_EFFORT):
        return setting
    if setting != "auto":
        raise ValueError(f"reliability setting must be auto, reliable or best_effort, got {setting!r}")
    return BEST_EFFORT if BEST_EFFORT in offered else RELIABLE


class SequenceGaps:
    """Counts the frames missing between consecutive messages of each publisher.

    rclpy's message info has the publication sequence number but not the publisher's id, so publishers are told
    apart by their numbers: a message continues the stream whose last number is the closest below its own, and a
    number below every stream's last starts a new stream (a second publisher, or a camera driver restarted). With
    one publisher, the usual case, this is exact; with several on one topic, the total stays right as long as each
    keeps its own pace (two publishers in step send the same numbers at the same time: each number then goes to the
    stream that has not had it yet)."""

    def __init__(self, max_streams: int = 8) -> None:
        self.max_streams = max_streams
        self._last: OrderedDict[int, int] = OrderedDict()  # stream id -> last sequence number, least recent first
        self._next_id = 0

    def observe(self, seq: int) -> int:
        """Record `seq`; return how many frames are missing just before it (0 when none)."""
        best: int | None = None
        for sid, last in self._last.items():
            if last < seq and (best is None or last > self._last[best]):
                best = sid
        if best is None:
            best = self._next_id
            self._next_id += 1
            missing = 0
        else:
            missing = seq - self._last[best] - 1
        self._last[best] = seq
        self._last.move_to_end(best)
        while len(self._last) > self.max_streams:
            self._last.popitem(last=False)
        return missing
