"""The probe's options: :func:`~bertfeat.probe.probe`'s arguments as one typed object.

Families, checks and the statistics read ``ctx.options.<name>``; a misspelt option is an
``AttributeError`` at once, not a silent ``KeyError`` or default later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ProbeOptions"]


@dataclass
class ProbeOptions:
    """What :func:`~bertfeat.probe.probe` was asked (see its parameters).

    ``poolings`` and ``union`` are resolved in place at the start of the run (checked
    poolings; ``union=None`` follows ``tfidf``); ``progress`` is the resolved ``verbose``.
    """

    model: str = "default"
    layers: str | Sequence[int] = "all"
    poolings: Sequence[str] = ("cls", "mean", "max")
    heads: Sequence[str] | dict = ("logreg", "svm", "mlp")
    cv: Any = 5
    scoring: Any = None
    random_control: bool = True
    cache: Any = "auto"
    combos: Any = True
    tfidf: bool = True
    union: bool | None = None
    chunk: bool = True
    finetune: bool | dict = False
    screen: str = "ridge"
    refine_top: int = 2
    union_top: int = 1
    chunk_top: int = 2
    task: str = "auto"
    random_state: int = 0
    control_seed: int = 0
    control_texts: int | str | None = "auto"
    n_jobs: int | None = None
    refit: bool = True
    verbose: bool | str = "auto"
    repeats: int = 1
    nested: bool = False
    test_size: float | None = None
    alpha: float = 0.05
    select: str = "top"
    progress: str = "off"
