"""Names a module exported before they moved up a layer, looked up at their new home on
first access (PEP 562), so old imports and pickles keep working without the module
importing a layer above it when it is itself imported."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["forwarding"]


def forwarding(module: str, moved: dict[str, str],
               namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list]]:
    """A module's ``__getattr__`` and ``__dir__`` that forward ``moved`` names.

    Parameters
    ----------
    module : str
        The forwarding module's ``__name__`` (for the error message).
    moved : dict of str -> str
        Name -> the module that defines it now.
    namespace : dict
        The forwarding module's ``globals()``.

    Returns
    -------
    (callable, callable)
        ``__getattr__`` and ``__dir__`` for the module.
    """

    def __getattr__(name: str) -> Any:
        if name in moved:
            return getattr(importlib.import_module(moved[name]), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(moved))

    return __getattr__, __dir__
