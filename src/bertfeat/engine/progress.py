"""Progress of long jobs: a bar where someone watches, log lines where nobody does.

:class:`Progress` counts done/total items. Where a person watches (stderr is a terminal, or
the code runs in a Jupyter kernel) it shows a ``tqdm.auto`` bar (a widget in notebooks);
otherwise (stderr sent to a file, a batch job, a CI log) it writes a line through
:mod:`logging` (logger ``"bertfeat"``) every :func:`log_interval` seconds::

    bertfeat encode: 1,200/5,000 texts (24%), elapsed 1m02s, 19.3 texts/s, ETA 3m17s

and a last line when the job ends, if it wrote any before (short jobs stay quiet). When
neither the ``"bertfeat"`` logger nor the root logger has a handler, one writing to stderr is
added, so the lines are seen without any logging set-up; a program that configures logging
gets them through its own handlers and levels (INFO).

Used by the encoder (``BertFeaturizer``, ``BertWordFeaturizer``), ``BertClassifier.fit`` /
``BertRegressor.fit`` and :func:`bertfeat.probe.probe`. Imports no torch.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Progress", "interactive", "log_interval", "logger", "format_seconds",
           "ensure_handler"]

#: the logger progress lines go to
logger = logging.getLogger("bertfeat")
#: seconds between two log lines unless ``BERTFEAT_PROGRESS_INTERVAL`` says otherwise
DEFAULT_INTERVAL = 30.0
_handler: logging.Handler | None = None


def log_interval() -> float:
    """Seconds between progress lines: ``BERTFEAT_PROGRESS_INTERVAL`` or 30."""
    try:
        return max(0.0, float(os.environ.get("BERTFEAT_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def interactive(stream: TextIO | None = None) -> bool:
    """Whether a person watches ``stream`` (default stderr): a terminal or a Jupyter kernel."""
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # closed or odd streams
        return False
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001 - any IPython oddity: not a notebook
        return False
    return ip is not None and hasattr(ip, "kernel")


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def ensure_handler() -> None:
    """A stderr handler on the ``bertfeat`` logger when logging is not configured."""
    global _handler
    root = logging.getLogger()
    if logger.handlers or root.handlers:
        if _handler is not None and _handler in logger.handlers and root.handlers:
            logger.removeHandler(_handler)  # the program set up logging since: use it
            _handler = None
        return
    _handler = logging.StreamHandler()  # sys.stderr at the time of each record
    _handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(_handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


class Progress:
    """Done/total counter shown as a bar (interactive) or as periodic log lines.

    Parameters
    ----------
    total : int
        Items to do.
    desc : str
        What is done, e.g. ``"bertfeat encode"``.
    unit : str, default="text"
        Name of one item (``"texts/s"`` in the lines).
    enabled : bool, default=True
        False: show nothing.
    mode : {"auto", "bar", "log"}, default="auto"
        ``"auto"``: a bar when :func:`interactive`, else log lines.
    interval : float, optional
        Seconds between log lines (default: :func:`log_interval`).
    clock : callable, default=time.monotonic
        Seconds now (tests pass a fake clock).
    stream : file, optional
        Where the bar is drawn and what :func:`interactive` looks at (default: stderr).
    """

    def __init__(self, total: int, desc: str, unit: str = "text", *, enabled: bool = True,
                 mode: str = "auto", interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 stream: TextIO | None = None) -> None:
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.done = 0
        self.clock = clock
        self.interval = log_interval() if interval is None else float(interval)
        self.lines = 0
        self.bar: Any = None
        self.mode = "off"
        if enabled:
            self.mode = ("bar" if interactive(stream) else "log") if mode == "auto" else mode
        self.start = self.last = clock()
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit,
                            file=stream if stream is not None else sys.stderr)
        elif self.mode == "log":
            ensure_handler()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1, note: str | None = None) -> None:
        """``n`` more items done; ``note`` (e.g. the stage's name) goes on the bar/line."""
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(int(n))
            if note:
                self.bar.set_postfix_str(note)
        elif self.mode == "log":
            now = self.clock()
            if now - self.last >= self.interval:
                self.last = now
                self._log(now, note)

    def line(self, now: float | None = None, note: str | None = None) -> str:
        """The progress line at ``now``: done/total, share, elapsed, rate, ETA."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 0.0)
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = (f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}s{share}, "
                f"elapsed {format_seconds(elapsed)}")
        if rate > 0:
            text += f", {rate:.3g} {self.unit}s/s"
            if self.done < self.total:
                text += f", ETA {format_seconds((self.total - self.done) / rate)}"
        return text + (f" [{note}]" if note else "")

    def _log(self, now: float, note: str | None = None) -> None:
        self.lines += 1
        logger.info(self.line(now, note))

    def close(self) -> None:
        """End: close the bar, or write the last line if any was written before."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.mode == "log" and self.lines:
            self._log(self.clock(), "done" if self.done >= self.total else None)
        self.mode = "off"
