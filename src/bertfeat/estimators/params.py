"""Parameter constraints shared by bertfeat's estimators and functions.

bertfeat validates parameters with scikit-learn's own machinery (``_parameter_constraints``
checked by ``_fit_context``, ``validate_params`` for functions). scikit-learn counts
``True`` as the integer 1; :class:`StrictInterval` does not, so ``batch_size=True`` is
refused like any other wrong type.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

__all__ = ["StrictInterval", "positive_int", "non_negative_int"]


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
