"""Parameter constraints shared by bertfeat's estimators and functions, and the reading of
the ``layers`` parameter (:func:`resolve_layers`) the featurizers share.

bertfeat validates parameters with scikit-learn's own machinery (``_parameter_constraints``
checked by ``_fit_context``, ``validate_params`` for functions). scikit-learn counts
``True`` as the integer 1; :class:`StrictInterval` does not, so ``batch_size=True`` is
refused like any other wrong type.
"""

from __future__ import annotations

import os
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .. import models
from ..io.inputs import BAD_INPUT_POLICIES
from ..pooling import COMBINES
from ..store import FeatureStore

__all__ = ["StrictInterval", "positive_int", "non_negative_int", "layer_features_constraints",
           "resolve_layers"]


class StrictInterval(Interval):
    """:class:`sklearn.utils._param_validation.Interval` that refuses booleans."""

    def is_satisfied_by(self, val) -> bool:
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


def positive_int() -> StrictInterval:
    """An int >= 1 (not a bool)."""
    return StrictInterval(Integral, 1, None, closed="left")


def non_negative_int() -> StrictInterval:
    """An int >= 0 (not a bool)."""
    return StrictInterval(Integral, 0, None, closed="left")


def layer_features_constraints() -> dict:
    """The ``_parameter_constraints`` entries every layer featurizer shares.

    :class:`~bertfeat.BertFeaturizer` and :class:`~bertfeat.BertWordFeaturizer` add their
    own (pooling, windows) to a fresh copy.

    Returns
    -------
    dict
    """
    return {
        "model": [str, os.PathLike],
        "layers": "no_validation",  # the range depends on the model: resolve_layers
        "layer_combine": [StrOptions(set(COMBINES))],
        "max_length": [positive_int(), None],
        "batch_size": [positive_int()],
        "device": [str, None],  # the value is checked by models.resolve_device
        "precision": [StrOptions(set(models.PRECISIONS))],
        "revision": [str, None],
        "cache": [StrOptions({"auto"}), str, os.PathLike, FeatureStore, "boolean", None],
        "show_progress": [StrOptions({"auto"}), "boolean"],
        "max_batch_tokens": [positive_int(), None],
        "on_bad_input": [StrOptions(set(BAD_INPUT_POLICIES))],
        "trust_remote_code": ["boolean"],
    }


def resolve_layers(spec: Any, info: models.ModelInfo) -> list[int]:
    """Absolute hidden-state indices of a ``layers`` parameter for a model.

    Parameters
    ----------
    spec : int, list of int or "all"
        The ``layers`` parameter (negative numbers count from the last layer).
    info : ModelInfo
        The resolved model (its number of layers bounds the indices).

    Returns
    -------
    list of int
        0 = embedding output, ``info.n_layers`` = last layer.
    """
    n = info.n_layers
    if isinstance(spec, str):
        if spec != "all":
            raise ValueError(f"layers must be an int, a list of ints or 'all', got {spec!r}")
        return list(range(n + 1))
    items = [spec] if isinstance(spec, (Integral, np.integer)) else spec
    if not isinstance(items, (list, tuple, np.ndarray)) or len(items) == 0:
        raise ValueError(f"layers must be an int, a non-empty list of ints or 'all', "
                         f"got {spec!r}")
    resolved = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (Integral, np.integer)):
            raise TypeError(f"layers must hold ints, got {item!r}")
        item = int(item)
        if not -(n + 1) <= item <= n:
            raise ValueError(
                f"layers={spec!r}: layer {item} is out of range for model "
                f"{info.spec!r}, which has {n} layers. Valid layers are 0..{n} "
                f"(0 = embedding output, {n} = last layer) or -{n + 1}..-1 counting "
                "from the end."
            )
        resolved.append(item if item >= 0 else n + 1 + item)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"layers={spec!r} names the same layer twice")
    return resolved
