"""The two equality promises of the store, as assertions (bounds: ``bertfeat.equality``).

* :func:`assert_same_computation` — bit for bit: a stored vector read back, or the same
  texts in the same batches in the same process.
* :func:`assert_within_bound` — another batch composition, process, thread count or CPU
  kernel: equal within the precision's rounding (:data:`bertfeat.equality.BOUNDS`).
"""

from __future__ import annotations

import numpy as np

from bertfeat.equality import bound_for, compare


def assert_same_computation(actual, expected) -> None:
    """Bit-for-bit equality: what the same computation wrote, read back."""
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def assert_within_bound(actual, expected, *, precision: str = "fp32",
                        store_dtype: str = "float32", err_msg: str = "") -> None:
    """Equality up to the store's stated cross-batch bound for ``precision``."""
    problem = compare(actual, expected, bound_for(precision, store_dtype))
    assert problem is None, f"vectors differ beyond the store's bound: {problem} {err_msg}"
