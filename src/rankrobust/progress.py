"""Progress of long work, on stderr: a tqdm bar on a terminal, a plain line every ~10 s in a log.

:class:`Progress` counts units of work (inputs attacked, rows measured, runs finished) towards a
total. Where it writes depends on the stream:

* a terminal: a tqdm bar (count, rate, elapsed, ETA, and a postfix such as ``failed=1``);
* anything else (a log file, a pipe, CI): one line ``DESC: n/total UNIT (p %), elapsed m:ss,
  ETA m:ss[, postfix]`` every ``interval`` seconds (10 by default), also while one long unit is
  still running (a background thread looks once a second), and a closing line. With
  ``enabled=None`` (the default: "show progress unless asked not to") work that ends within the
  first interval prints nothing at all; with ``enabled=True`` the closing line is always written;
  with ``enabled=False`` nothing is. After an error no closing line is written, so that the
  error stays the last line.

Messages meant to survive the bar (a failed run) go through :meth:`Progress.write`.

Units of unequal cost (a study's runs: seconds for a small MLP, half an hour for an adversarial
CNN) give a count-based ETA that is far off. With ``total_work`` (any unit: the sweep uses each
run's estimated hours) and ``update(n, work=w)``, the ETA is ``elapsed × (total_work −
work_done) / work_done``: the time so far per unit of work done, times the work still to do.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

INTERVAL_S = 10.0


def clock_text(seconds: float) -> str:
    """'1:05', '1:02:03': a duration for humans."""
    s = max(int(seconds), 0)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Progress of ``total`` units (see the module docstring); a context manager."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        interval: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: bool = True,
        total_work: float | None = None,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        usable = total_work is not None and math.isfinite(total_work) and total_work > 0
        self.total_work = total_work if usable else None  # else the ETA counts units
        self.work_done = 0.0
        self.stream = stream if stream is not None else sys.stderr
        self.forced = enabled is True
        self.interval, self.clock = interval, clock
        self.n = 0
        self.postfix = ""
        self.lines = 0  # progress lines written in log mode
        self._lock = threading.Lock()
        self._start = self._last = clock()
        self._bar: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.mode = "off" if enabled is False else ("bar" if _isatty(self.stream) else "log")
        if self.mode == "bar":
            # with total_work the ETA is ours (in the postfix), not tqdm's count-based one
            eta = "" if self.total_work else ", ETA {remaining}"
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True,
                             leave=False,
                             bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed}" + eta + "{postfix}")
            self._refresh_postfix()
        elif self.mode == "log" and heartbeat:
            self._thread = threading.Thread(target=self._beat, name="rankrobust-progress", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.interval)):
            self.poll()

    def update(self, n: int = 1, work: float | None = None) -> None:
        """``n`` more units done, together ``work`` of ``total_work`` (when given)."""
        with self._lock:
            self.n += n
            if work is not None and math.isfinite(work) and work > 0:
                self.work_done += work
            if self._bar is not None:
                self._bar.update(n)
                self._refresh_postfix()
        self.poll()

    def set_postfix(self, text: str) -> None:
        """Extra state shown after the counts, e.g. ``done=3 running=2 failed=0``."""
        with self._lock:
            self.postfix = text
            if self._bar is not None:
                self._refresh_postfix()

    def _refresh_postfix(self) -> None:
        if not self.total_work:
            self._bar.set_postfix_str(self.postfix)
            return
        eta = self._eta(self.clock() - self._start)
        parts = [f"ETA {eta}" if eta else "ETA ?", self.postfix]
        self._bar.set_postfix_str(", ".join(p for p in parts if p))

    def _eta(self, elapsed: float) -> str:
        """The time still to go, by work done when ``total_work`` is known, else by count; ''
        when nothing is done yet."""
        if not self.total:
            return ""
        if self.n >= self.total:
            return "0:00"
        if self.total_work and self.work_done > 0:
            left = max(self.total_work - self.work_done, 0.0)
            return clock_text(elapsed * left / self.work_done)
        if self.n > 0:
            return clock_text(elapsed * (self.total - self.n) / self.n)
        return ""

    def line(self) -> str:
        """The log line for the current state."""
        elapsed = self.clock() - self._start
        if self.total is None and not self.n:  # work without units: only the time it has taken
            return f"{self.desc}: running, elapsed {clock_text(elapsed)}"
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        left = self._eta(elapsed)
        eta = f", ETA {left}" if left else ""
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {count} {self.unit}{share}, elapsed {clock_text(elapsed)}{eta}{tail}"

    def poll(self) -> None:
        """In log mode, write a line when ``interval`` seconds have passed since the last one."""
        if self.mode != "log":
            return
        with self._lock:
            now = self.clock()
            if now - self._last < self.interval:
                return
            self._last = now
            self._emit(self.line())
            self.lines += 1

    def write(self, message: str) -> None:
        """A message on its own line (above the bar on a terminal)."""
        if self.mode == "bar":
            self._bar.write(message, file=self.stream)
        else:
            with self._lock:
                self._emit(message)

    def _emit(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the work
            pass

    def close(self, ok: bool = True) -> None:
        """Stop; in log mode write the closing line (see the module docstring)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and ok and (self.forced or self.lines):
            with self._lock:
                self._emit(self.line())
        self.mode = "off"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(ok=exc_type is None)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
