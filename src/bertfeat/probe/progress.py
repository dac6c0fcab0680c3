"""How the probe shows progress: log messages on stderr and one bar over its stages."""

from __future__ import annotations

import logging
import sys

from .context import logger

__all__ = ["StageBar", "progress_handler"]


def progress_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[probe] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


class StageBar:
    """One progress bar over the probe's stages, in a terminal with ``verbose=True``."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="bertfeat probe", unit="stage", leave=False)
        self.started = False

    def stage(self, name: str) -> None:
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
            self.bar.set_postfix_str(name)
        self.started = True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.close()
