"""What "stored == fresh" means: the store's equality promise, stated once.

Two promises, and only these two:

* **Same computation, bit for bit.** A vector read from the store is exactly the vector
  the computation that wrote it returned: the same bytes, on every read, in every
  process. Rounding to the storage dtype (``FeatureStore(dtype="float16")``) is applied
  to cached and fresh results alike, so within one run they are equal bit for bit.
* **Across batch compositions, thread counts and CPU kernels, equal to the precision's
  rounding.** On AVX-512 the GEMM kernels sum in an order that depends on the shape of the
  batch, so a text's vector depends, at its last bits, on which texts shared its batch.
  A vector computed in another batch (or process, or machine) is therefore *close*, not
  identical; :data:`BOUNDS` says how close, per row of vectors:
  ``max_j |a_ij - b_ij| <= rel * max_j |b_ij|`` and ``cosine(a_i, b_i) >= min_cosine``.

The bounds are what the tests assert (``tests/equality.py`` uses :func:`compare`), so the
promise and its check cannot drift apart. Measured with
``python benchmarks/bench_batch_equality.py --texts 200`` (all-MiniLM-L6-v2, every layer,
batches of 1 and 4 against the default batching; AMD EPYC, AVX-512, torch 2.13): fp32 rows
moved by at most 6.9e-7 of their largest value (5.4e-7 with the math libraries capped to
AVX2), cosine >= 0.9999998; bf16 rows by 6.7e-3, cosine >= 0.99998. The bounds leave a
margin of about 15x (fp32) and 7x (bf16) over those numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BOUNDS", "Bound", "compare", "bound_for"]


@dataclass(frozen=True)
class Bound:
    """How close two computations of the same vectors are promised to be.

    Parameters
    ----------
    rel : float
        Largest element-wise difference of a row, relative to the row's largest magnitude.
    min_cosine : float
        Smallest cosine similarity between a row and its counterpart.
    """

    rel: float
    min_cosine: float


#: the cross-batch promise per kind of vector: fp32 computation stored as float32; fp32
#: computation stored as float16 (one float16 step is 2**-11 of a value, so a last-bit
#: difference before rounding can flip one step); bf16 / fp16 computation (8 / 11 bits of
#: mantissa, differences carried through every layer)
BOUNDS: dict[str, Bound] = {
    "fp32": Bound(rel=1e-5, min_cosine=0.999999),
    "float16-store": Bound(rel=2e-3, min_cosine=0.99999),
    "bf16": Bound(rel=5e-2, min_cosine=0.999),
    "fp16": Bound(rel=1e-2, min_cosine=0.9999),
}


def bound_for(precision: str = "fp32", store_dtype: str = "float32") -> Bound:
    """The cross-batch bound for vectors of ``precision`` kept as ``store_dtype``.

    Parameters
    ----------
    precision : {"fp32", "bf16", "fp16", "int8"}, default="fp32"
        Concrete precision of the encoder (``featurizer.precision_``). int8 computes its
        activations in fp32 from fixed quantized weights, so it has the fp32 bound.
    store_dtype : {"float32", "float16"}, default="float32"
        The store's dtype.

    Returns
    -------
    Bound
    """
    if precision in ("bf16", "fp16"):
        return BOUNDS[precision]
    return BOUNDS["float16-store"] if store_dtype == "float16" else BOUNDS["fp32"]


def compare(a, b, bound: Bound) -> str | None:
    """Check two arrays of row vectors against ``bound``; ``None`` when they are within it.

    Parameters
    ----------
    a, b : array-like of shape (n, d) or (d,)
        The two computations (``b`` is the reference).
    bound : Bound

    Returns
    -------
    str or None
        ``None`` when every row is within the bound, else a sentence naming the worst row.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        return f"shapes differ: {a.shape} vs {b.shape}"
    width = int(np.prod(a.shape[1:]))  # rows of any shape, none at all too
    a = a.reshape(a.shape[0], width)
    b = b.reshape(b.shape[0], width)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        same = np.array_equal(a, b, equal_nan=True)
        return None if same else "non-finite values differ"
    scale = np.abs(b).max(axis=1)
    diff = np.abs(a - b).max(axis=1)
    over = diff > bound.rel * scale
    if over.any():
        row = int(np.argmax(np.where(over, diff / np.maximum(scale, 1e-300), -1)))
        return (f"row {row}: max |a-b| = {diff[row]:.3g} > {bound.rel:g} x max|b| "
                f"({scale[row]:.3g})")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    nonzero = norms > 0
    cosine = np.ones(len(a))
    cosine[nonzero] = (a * b).sum(axis=1)[nonzero] / norms[nonzero]
    if (cosine < bound.min_cosine).any():
        row = int(np.argmin(cosine))
        return f"row {row}: cosine {cosine[row]:.7f} < {bound.min_cosine}"
    return None
