"""Progress of a long command: a tqdm bar on a terminal, plain periodic lines anywhere else.

tqdm redraws its bar in place with carriage returns. With stderr redirected to a log file (CI, nohup, a launch
file) every redraw stays in the file, and a training run's bar becomes a single line of kilobytes that no one can
read. Off a terminal the same calls print a short line at most every `interval` seconds, and one at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

INTERVAL_S = 10.0


def show_progress(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str, unit: str,
                  enabled: bool = True, file: IO[str] | None = None, initial: int = 0, interval: float = INTERVAL_S,
                  clock: Callable[[], float] = time.monotonic, **tqdm_kwargs: Any) -> tqdm | PlainProgress:
    """A tqdm bar if `file` (default: sys.stderr) is a terminal, else a PlainProgress with the same calls; nothing
    at all with enabled=False. `tqdm_kwargs` only shape a bar (leave, dynamic_ncols, ...): lines ignore them."""
    from tqdm import tqdm

    stream = sys.stderr if file is None else file
    if not enabled or stream is None:  # stderr is None under pythonw and some daemons
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True)
    if _is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream, **tqdm_kwargs)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, file=stream, initial=initial,
                         interval=interval, clock=clock)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class PlainProgress:
    """The part of tqdm's interface the commands use, written as whole lines:
    `train: 1200/8000 step (15%), 3.1 step/s, 36 min 2 s left, loss=0.52`. Lines come from update() (and so from
    iteration): nothing is printed while nothing calls it, which keeps it free of threads."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str, unit: str,
                 file: IO[str], initial: int = 0, interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # as tqdm does
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.file, self.interval, self.clock = file, interval, clock
        self.n = self.initial = initial
        self.postfix = ""
        self.closed = False
        self.start = clock()
        # The rate of a periodic line is the one since the line before: a slow start (a model loading, a first
        # batch compiling) does not make the time left wrong for the rest of the run.
        self._last_t, self._last_n = self.start, initial

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("PlainProgress made without an iterable is not iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:  # also on break: the loop's generator is closed when dropped, as tqdm's is
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        if not self.closed and now - self._last_t >= self.interval:
            rate = (self.n - self._last_n) / (now - self._last_t)
            left = self._time_left(rate)
            self._line(f"{self._count()}, {_rate(rate, self.unit)}" + (f", {left} left" if left else ""))
            self._last_t, self._last_n = now, self.n

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        del refresh  # a line shows the postfix when it is due, never earlier
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={_number(v)}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        del refresh
        self.postfix = s.strip()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        elapsed = self.clock() - self.start
        done = self.n - self.initial
        rate = f", {_rate(done / elapsed, self.unit)}" if elapsed > 0 and done else ""
        self._line(f"{self._count()} in {_duration(elapsed)}{rate}")

    def _count(self) -> str:
        n = _number(self.n)
        if not self.total:
            return f"{n} {self.unit}"
        return f"{n}/{_number(self.total)} {self.unit} ({int(100 * self.n / self.total)}%)"

    def _time_left(self, rate: float) -> str:
        if not self.total or rate <= 0 or self.n >= self.total:
            return ""
        return _duration((self.total - self.n) / rate)

    def _line(self, text: str) -> None:
        self.file.write(f"{self.desc}: {text}" + (f", {self.postfix}" if self.postfix else "") + "\n")
        self.file.flush()  # a log file is block-buffered: a line is only of use once someone can read it


def _number(v: Any) -> str:
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.3g}"
    return str(v).strip()


def _rate(per_s: float, unit: str) -> str:
    return f"{per_s:.1f} {unit}/s" if per_s < 100 else f"{per_s:.0f} {unit}/s"


def _duration(s: float) -> str:
    if s < 1:
        return f"{s:.2f} s"
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    m = int(s // 60)
    if m < 60:
        return f"{m} min {int(s % 60)} s"
    return f"{m // 60} h {m % 60} min"
