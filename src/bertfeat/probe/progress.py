"""How the probe shows progress: messages, and one counter over its stages.

``probe(verbose="auto")`` (the default): where a person watches (a terminal, a notebook) a
bar over the stages; elsewhere (stderr sent to a file, a batch job) a log line per stage
with elapsed time, done/total, rate and ETA, and the probe's messages, through
:mod:`logging` (logger ``"bertfeat"``, see :mod:`bertfeat.engine.progress`). ``verbose=True``: the
messages on stderr, and the bar in a terminal. ``verbose=False``: nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from ..engine.progress import Progress, ensure_handler, interactive
from .context import logger

__all__ = ["StageBar", "progress_handler", "ProbeVerbosity"]


def progress_handler() -> logging.Handler:
    """Print the probe's messages on stderr as ``[probe] ...`` (``verbose=True``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[probe] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not twice when the "bertfeat" logger prints too
    return handler


class ProbeVerbosity:
    """Sets up the probe's messages for one run, and puts the loggers back after it."""

    def __init__(self, verbose: bool | str) -> None:
        self.handler = None
        self.level, self.propagate = logger.level, logger.propagate
        self.mode = "off"
        if verbose is True:
            self.handler = progress_handler()
            self.mode = "bar"
        elif verbose == "auto":
            self.mode = "bar" if interactive() else "log"
        if self.mode != "log" and self.handler is None:
            logger.setLevel(logging.WARNING)  # messages only where asked for
        elif self.mode == "log":
            logger.setLevel(logging.INFO)
            ensure_handler()

    def close(self) -> None:
        if self.handler is not None:
            logger.removeHandler(self.handler)
        logger.setLevel(self.level)
        logger.propagate = self.propagate


class StageBar:
    """One counter over the probe's stages: a bar in a terminal (``mode="bar"``), a log
    line per stage (``mode="log"``), or nothing.

    ``enabled=True`` is ``mode="bar"``; ``enabled=False`` is ``mode="off"``.
    """

    def __init__(self, total: int, enabled: bool = True, mode: str | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        mode = mode if mode is not None else ("bar" if enabled else "off")
        self.bar = None
        self.counter = None
        if mode == "bar" and sys.stderr.isatty() or mode == "bar" and interactive():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="bertfeat probe", unit="stage", leave=False)
        elif mode == "log":
            extra = {"clock": clock} if clock is not None else {}
            self.counter = Progress(total, "bertfeat probe", "stage", mode="log",
                                    interval=0.0, **extra)
        self.started = False

    def stage(self, name: str) -> None:
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
            self.bar.set_postfix_str(name)
        elif self.counter is not None:
            self.counter.update(1 if self.started else 0, f"next: {name}")
        self.started = True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.close()
        elif self.counter is not None:
            self.counter.update(1)
            self.counter.close()
