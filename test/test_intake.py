"""The node's intake in plain Python: replay mode's byte budget and back-pressure, counting gaps in sequence
numbers, following the publishers' reliability, and the monitor's accounting of every frame."""

from __future__ import annotations

import threading
import time

import pytest

from hydranet_ros.ros.inbox import FrameInbox
from hydranet_ros.ros.monitor import OK, WARN, CameraMonitor
from hydranet_ros.ros.transport import BEST_EFFORT, RELIABLE, SequenceGaps, input_reliability


def test_replay_inbox_blocks_a_camera_at_its_budget_and_lets_it_go_when_a_pass_takes_frames():
    inbox = FrameInbox(["a", "b"], "replay", max_bytes=250)
    for i in range(2):
        assert inbox.put("a", f"a{i}", size=100) is False
    done = threading.Event()
    third = threading.Thread(target=lambda: (inbox.put("a", "a2", size=100), done.set()))
    third.start()
    assert not done.wait(0.3), "a third 100-byte frame must wait: 300 > 250"
    # Another camera with nothing waiting always gets one frame in, whatever the budget: no camera starves.
    t0 = time.monotonic()
    inbox.put("b", "b0", size=1000)
    assert time.monotonic() - t0 < 0.1 and inbox.pending_bytes() == 1200
    batch = inbox.take(timeout=1.0)
    assert [f.msg for f in batch] == ["a0", "b0"]
    assert done.wait(2.0), "the pass made room: the waiting put goes through"
    third.join()
    assert [f.msg for f in inbox.take(timeout=1.0)] == ["a1"]
    assert [f.msg for f in inbox.take(timeout=1.0)] == ["a2"]
    assert inbox.pending() == 0 and inbox.pending_bytes() == 0


def test_close_releases_a_put_waiting_for_room():
    inbox = FrameInbox(["a"], "replay", max_bytes=10)
    inbox.put("a", "first", size=10)
    released = threading.Event()
    waiter = threading.Thread(target=lambda: (inbox.put("a", "second", size=10), released.set()))
    waiter.start()
    time.sleep(0.1)
    inbox.close()
    assert released.wait(2.0)
    waiter.join()


def test_live_inbox_never_blocks_and_keeps_the_newest():
    inbox = FrameInbox(["a"], "live", max_bytes=None)
    assert inbox.put("a", 1, size=10**9) is False
    assert inbox.put("a", 2, size=10**9) is True  # superseded: "busy"
    assert inbox.pending() == 1 and inbox.pending_bytes() == 10**9
    assert [f.msg for f in inbox.take(timeout=0.5)] == [2]
    with pytest.raises(ValueError):
        FrameInbox(["a"], "replay", max_bytes=0)


def test_frames_carry_their_reception_time():
    inbox = FrameInbox(["a"], "live")
    inbox.put("a", "x", received=123.5)
    assert inbox.take(timeout=0.5)[0].received == 123.5


def test_sequence_gaps_per_publisher():
    g = SequenceGaps()
    assert [g.observe(s) for s in (1, 2, 3, 6, 7)] == [0, 0, 0, 2, 0]
    # A second publisher on the topic (or the camera driver restarted): its numbers start again at 1.
    assert [g.observe(s) for s in (1, 2, 8, 4, 9)] == [0, 0, 0, 1, 0]
    # Two publishers in step, A sending 1-6 whole, B 1-8 without 3 and 7: the total is right.
    h = SequenceGaps()
    assert sum(h.observe(s) for s in (1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 6, 8)) == 2


def test_sequence_gaps_forget_the_oldest_stream():
    g = SequenceGaps(max_streams=2)
    g.observe(100)
    g.observe(50)
    g.observe(10)  # third stream: the least recently used (100) goes
    assert g.observe(101) == 50  # continues the stream at 50 now


@pytest.mark.parametrize(("setting", "offered", "expected"), [
    ("auto", [], RELIABLE),
    ("auto", [RELIABLE, RELIABLE], RELIABLE),
    ("auto", [RELIABLE, BEST_EFFORT], BEST_EFFORT),
    ("reliable", [BEST_EFFORT], RELIABLE),
    ("best_effort", [RELIABLE], BEST_EFFORT),
])
def test_input_reliability_follows_the_publishers(setting, offered, expected):
    assert input_reliability(setting, offered) == expected


def test_input_reliability_rejects_an_unknown_setting():
    with pytest.raises(ValueError):
        input_reliability("sometimes", [])


def test_monitor_accounts_for_every_frame_a_publisher_sent():
    """20 frames sent: 3 lost on the way (DDS says so), 2 overwritten in the node's reader (gaps beyond the
    losses), 15 received: 10 published, 3 superseded, 1 stale, 1 malformed."""
    m = CameraMonitor("front", "/cam")
    m.loss_hint = "publish reliable"
    m.lost(3)
    m.gap(5)
    for _ in range(15):
        m.received()
    for reason, n in (("busy", 3), ("stale", 1), ("malformed", 1)):
        for _ in range(n):
            m.dropped(reason, "bad" if reason == "malformed" else "")
    for age in range(10):
        m.published(age_ms=10.0 * (age + 1), stamp_age_ms=50.0)
    level, message, values = m.report(max_age_ms=200)
    v = dict(values)
    assert level == WARN and "3 frame(s) (17%) lost before reaching the node: publish reliable" in message
    assert v["lost_in_transport_total"] == "3" and v["dropped_overrun_total"] == "2"
    published = int(v["published_total"])
    dropped = sum(int(v[f"dropped_{r}_total"]) for r in ("busy", "stale", "malformed", "overrun"))
    assert published + dropped + int(v["lost_in_transport_total"]) == 20
    assert v["age_at_publish_ms_p50"] == "55.00" and v["age_at_publish_ms_max"] == "100.00"
    assert float(v["age_at_publish_ms_p95"]) == pytest.approx(95.5)
    assert v["stamp_age_at_publish_ms"] == "50.00"
    # The next period: only what happened since; the overrun total stays, its period count is 0.
    m.received()
    m.published(age_ms=5.0)
    m.focal_source = "camera_info"
    level, message, values = m.report(max_age_ms=200)
    v = dict(values)
    assert level == OK and v["dropped_overrun"] == "0" and v["dropped_overrun_total"] == "2"


def test_monitor_separates_rejected_camera_info_from_frames():
    m = CameraMonitor("front", "/cam")
    m.received()
    m.published(age_ms=1.0)
    m.info_rejected("camera_info on /info is unusable (fx=nan)")
    level, message, values = m.report(max_age_ms=None)
    v = dict(values)
    assert level == WARN and "1 camera_info message(s) rejected: camera_info on /info is unusable" in message
    assert v["camera_info_rejected_total"] == "1" and v["dropped_malformed_total"] == "0"


def test_monitor_says_why_frames_went_stale_only_in_live_mode():
    m = CameraMonitor("front", "/cam")
    m.focal_source = "camera_info"
    m.behind_hint = "a pass of 8 frame(s) takes about 900 ms, longer than max_age_ms"
    m.received()
    m.dropped("stale")
    level, message, _ = m.report(max_age_ms=200)
    assert level == WARN and "falling behind" in message and "900 ms" in message
    m.received()
    m.dropped("stale")
    m.published(age_ms=5000.0)
    level, message, _ = m.report(max_age_ms=None)  # replay: no age bound
    assert level == OK, message
