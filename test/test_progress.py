"""Progress (core.progress.show_progress): a tqdm bar on a terminal; anywhere else short plain lines, at most one per
interval and one at the end, never the carriage-return redraws that pile up into one huge line in a log file."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from tqdm import tqdm

from conftest import REPO, SAMPLES
from hydranet_ros.core.progress import PlainProgress, show_progress

HYDRANET = Path(sys.executable).parent / "hydranet"  # the console script, as a user runs it


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def lines(buf: io.StringIO) -> list[str]:
    text = buf.getvalue()
    assert "\r" not in text and (not text or text.endswith("\n")), repr(text)
    return text.splitlines()


@pytest.mark.parametrize("stderr", ["file", "pipe"])
def test_a_redirected_command_writes_short_plain_lines(tmp_path: Path, stderr: str) -> None:
    """hydranet make-bag (2 frames, well under a second) with stderr in a log file or a pipe, as CI or nohup has it."""
    argv = [str(HYDRANET), "make-bag", str(SAMPLES), "-o", str(tmp_path / "bag")]
    if stderr == "file":
        with open(tmp_path / "stderr.log", "wb") as log:
            proc = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, timeout=120)
        err = (tmp_path / "stderr.log").read_bytes()
    else:
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=120)
        err = proc.stderr
    assert proc.returncode == 0, err.decode(errors="replace")
    assert b"\r" not in err and b"\x1b" not in err, err  # no redraws, no terminal escapes
    text = err.decode()
    assert text.endswith("\n") and all(len(line) < 300 for line in text.splitlines()), text
    # The final line: where it ended, in how long, how fast.
    assert re.fullmatch(r"make-bag bag: 2/2 frame \(100%\) in \d+\.\d+ s(, [\d.]+ frame/s)?\n", text), text

    quiet = subprocess.run([*argv, "--force", "--quiet"], cwd=REPO, capture_output=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == b"", quiet.stderr


def test_plain_lines_come_at_most_every_interval_with_rate_time_left_and_postfix() -> None:
    clock, buf = FakeClock(), io.StringIO()
    bar = show_progress(total=100, desc="train", unit="step", file=buf, interval=10.0, clock=clock, leave=False,
                        dynamic_ncols=True)  # what only shapes a bar is accepted and ignored
    assert isinstance(bar, PlainProgress)
    clock.t += 4
    bar.update(4)
    assert lines(buf) == []  # 4 s < interval
    bar.set_postfix(loss=0.52, depth=0.12345, seg=2.0)
    clock.t += 6
    bar.update(6)
    assert lines(buf) == ["train: 10/100 step (10%), 1.0 step/s, 1 min 30 s left, loss=0.52, depth=0.123, seg=2"]
    clock.t += 5
    bar.update(10)
    assert len(lines(buf)) == 1  # 5 s after the last line
    clock.t += 5
    bar.set_postfix_str("loss=0.4")
    bar.update(10)
    # The rate is the one since the last line (20 steps in 10 s), not since the start (30 in 20 s).
    assert lines(buf)[1] == "train: 30/100 step (30%), 2.0 step/s, 35 s left, loss=0.4"
    clock.t += 3
    with bar:
        pass
    bar.close()  # once only
    assert lines(buf)[2:] == ["train: 30/100 step (30%) in 23 s, 1.3 step/s, loss=0.4"]
    assert bar.n == 30 and bar.total == 100


def test_plain_iteration_unknown_total_and_resume() -> None:
    clock, buf = FakeClock(), io.StringIO()
    seen = []
    for i in show_progress(range(5), desc="evaluate", unit="batch", file=buf, interval=2.0, clock=clock):
        clock.t += 1.0
        seen.append(i)
    assert seen == [0, 1, 2, 3, 4]  # the length of the iterable is the total, as in tqdm
    assert lines(buf) == ["evaluate: 2/5 batch (40%), 1.0 batch/s, 3.0 s left",
                          "evaluate: 4/5 batch (80%), 1.0 batch/s, 1.0 s left",
                          "evaluate: 5/5 batch (100%) in 5.0 s, 1.0 batch/s"]

    buf = io.StringIO()
    for i in show_progress(iter(range(100)), desc="frames", unit="frame", file=buf, interval=2.0, clock=clock):
        if i == 3:
            break  # the loop's generator is closed when dropped: the final line still comes
    assert lines(buf) == ["frames: 3 frame in 0.00 s"]

    buf, start = io.StringIO(), clock.t
    with show_progress(desc="hydranet record", unit="msg", file=buf, interval=10.0, clock=clock) as bar:
        while clock.t - start < 19.5:
            clock.t += 0.5
            bar.update(0)  # record polls: a quiet topic still gets its line
        clock.t += 0.5
        bar.update(250 - bar.n)
    assert lines(buf) == ["hydranet record: 0 msg, 0.0 msg/s", "hydranet record: 250 msg, 25.0 msg/s",
                          "hydranet record: 250 msg in 20 s, 12.5 msg/s"]

    buf = io.StringIO()
    with show_progress(total=200, initial=150, desc="train", unit="step", file=buf, clock=clock) as bar:
        for _ in range(20):
            clock.t += 0.5
            bar.update(1)
    # A resumed run: the rate counts this run's steps only.
    assert lines(buf) == ["train: 170/200 step (85%), 2.0 step/s, 15 s left",
                          "train: 170/200 step (85%) in 10 s, 2.0 step/s"]


def test_disabled_prints_nothing_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    with show_progress(range(3), desc="x", unit="it", enabled=False, interval=0.0) as bar:
        assert list(bar) == [0, 1, 2]
        bar.update(bar.n + 5)
        bar.set_postfix(loss=1.0)
    assert buf.getvalue() == ""
    # Enabled, the default stream is sys.stderr as it is at the call (not at import).
    list(show_progress(range(3), desc="x", unit="it"))
    assert len(lines(buf)) == 1 and lines(buf)[0].startswith("x: 3/3 it (100%) in "), lines(buf)


def read_all(fd: int) -> bytes:
    """Everything written to a pty's other end: one read returns only what the line discipline had passed on so
    far (a fresh-clone CI run saw the first redraw only)."""
    chunks = []
    while select.select([fd], [], [], 1.0)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the other end is closed and everything was read
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_a_terminal_gets_a_real_tqdm_bar() -> None:
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=True) as tty:
            bar = show_progress(range(3), desc="x", unit="it", file=tty)
            assert isinstance(bar, tqdm) and not bar.disable
            assert list(bar) == [0, 1, 2]
            assert isinstance(show_progress(desc="x", unit="it", file=tty, enabled=False), tqdm)
        out = read_all(master)
        assert b"\r" in out and b"3/3" in out  # tqdm's own redraws, as a terminal wants them
        assert isinstance(show_progress(desc="x", unit="it", file=io.StringIO()), PlainProgress)
    finally:
        os.close(master)


def test_no_command_uses_tqdm_directly() -> None:
    package = REPO / "hydranet_ros"
    direct = [str(p.relative_to(REPO)) for p in package.rglob("*.py")
              if p.name != "progress.py" and re.search(r"^\s*(from|import) tqdm", p.read_text(), re.MULTILINE)]
    assert not direct, f"use hydranet_ros.core.progress.show_progress: {direct}"
