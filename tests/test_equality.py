"""The store's equality promise (bertfeat.equality): the bound and its check."""

from __future__ import annotations

import numpy as np
import pytest

from bertfeat.equality import BOUNDS, bound_for, compare


def _rows(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(6, 48)).astype(np.float32)


def test_fp32_rounding_differences_are_within_the_bound():
    a = _rows()
    moved = a * (1 + np.float32(2e-7))  # a few last bits, as another batch shape gives
    assert not np.array_equal(moved, a)
    assert compare(moved, a, bound_for("fp32")) is None


def test_a_real_difference_names_its_row():
    a = _rows()
    b = a.copy()
    b[4, 7] += 1e-3 * np.abs(a[4]).max()
    problem = compare(b, a, bound_for("fp32"))
    assert problem is not None and problem.startswith("row 4:")
    assert compare(b, a, bound_for("bf16")) is None  # within bf16's looser bound


def test_the_cosine_bound_catches_a_turned_row():
    a = np.array([[1.0, 0.0, 0.0, 0.0]])
    b = np.array([[1.0, 0.049, 0.0, 0.0]])  # within 5e-2 of the largest value, turned
    bound = BOUNDS["bf16"]
    assert np.abs(a - b).max() <= bound.rel
    problem = compare(b, a, bound)
    assert problem is not None and "cosine 0.99880" in problem


def test_shapes_zero_rows_and_non_finite_values():
    a = _rows()
    assert "shapes differ" in compare(a[:3], a, bound_for())
    assert compare(np.zeros((0, 32)), np.zeros((0, 32)), bound_for()) is None  # no rows
    zeros = np.zeros((2, 5))
    assert compare(zeros, zeros, bound_for()) is None
    assert compare(zeros + 1e-30, zeros, bound_for()) is not None  # zero rows: exact
    nan = a.copy()
    nan[0, 0] = np.nan
    assert compare(nan, nan, bound_for()) is None
    assert compare(nan, a, bound_for()) == "non-finite values differ"


@pytest.mark.parametrize(("precision", "store_dtype", "expected"), [
    ("fp32", "float32", "fp32"), ("int8", "float32", "fp32"),
    ("fp32", "float16", "float16-store"), ("bf16", "float16", "bf16"),
    ("fp16", "float32", "fp16")])
def test_bound_for_each_precision_and_store_dtype(precision, store_dtype, expected):
    assert bound_for(precision, store_dtype) is BOUNDS[expected]


def test_bounds_are_ordered_from_strict_to_loose():
    order = ["fp32", "float16-store", "fp16", "bf16"]
    rels = [BOUNDS[k].rel for k in order]
    cosines = [BOUNDS[k].min_cosine for k in order]
    assert rels == sorted(rels) and cosines == sorted(cosines, reverse=True)
