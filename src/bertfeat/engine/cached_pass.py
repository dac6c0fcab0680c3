"""The one cached pass: lookup -> lock -> re-read -> encode -> finite check -> write.

Every encoder-backed estimator that keeps vectors in the feature store runs its misses
through :class:`CachedPass`, so each guarantee of the store exists once:

1. the model's files are checked against the fitted fingerprint before the store is read
   (:meth:`~bertfeat.base.EncoderEstimatorMixin._check_model_files`);
2. hits are read; the misses are encoded under the store's encode lock of the
   fingerprint, after a second read (what another process encoded meanwhile is read, not
   encoded again), with every core of the machine;
3. every batch, before it is kept or stored: the weight files are unchanged since the
   pass began (:class:`~bertfeat.base.WeightsGuard`), every value is finite
   (:class:`~bertfeat.encoder.NonFiniteError` otherwise), and it is rounded as the store
   keeps it, so cached == uncached;
4. the batch is kept in memory first, then written; a store failure turns writing off
   for the rest of the pass with one warning and never loses a computed batch.

A kind of record (pooled text statistics, per-word piece vectors) is a subclass that says
how to read, encode, keep and write its batches; it never repeats the steps above.
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from ..store import FeatureStore, StoreError
from . import encoder

__all__ = ["CachedPass", "Emit"]

#: ``emit(rows, batch)``: hand a finished batch (rows into the pass's items) to the pass
Emit = Callable[[np.ndarray, Any], None]


class CachedPass(ABC):
    """Fill the results of ``n`` items from the store and the encoder (see module doc).

    Parameters
    ----------
    owner : EncoderEstimatorMixin
        The fitted estimator: its fingerprint check, weights guard and precision.
    store : FeatureStore or None
        Where records live (``None``: encode everything, store nothing).
    digests : list of str
        One key per item (text or sentence digest).
    """

    #: what an item is called in messages ("text", "sentence")
    item = "item"

    def __init__(self, owner: Any, store: FeatureStore | None, digests: list[str]) -> None:
        self.owner = owner
        self.store = store
        self.digests = digests
        self.fingerprint = owner.fingerprint_
        self._writing = store is not None

    # ------------------------------------------------------------ what a kind defines
    @abstractmethod
    def read(self, fingerprint: str, rows: np.ndarray, *, count: bool) -> np.ndarray:
        """Read ``rows`` from the store into the results; return which were found."""

    @abstractmethod
    def encode(self, rows: np.ndarray, emit: Emit) -> None:
        """Encode ``rows``, calling ``emit(rows, batch)`` for each finished batch."""

    @abstractmethod
    def finite(self, batch: Any) -> np.ndarray:
        """Per item of ``batch``: whether all its values are finite."""

    @abstractmethod
    def storable(self, batch: Any) -> Any:
        """``batch`` as the store will return it (rounded to its dtype)."""

    @abstractmethod
    def keep(self, rows: np.ndarray, batch: Any) -> None:
        """Put ``batch`` into the results."""

    @abstractmethod
    def write(self, fingerprint: str, rows: np.ndarray, batch: Any) -> None:
        """Write ``batch`` to the store under ``fingerprint``."""

    # ------------------------------------------------------------------------- hooks
    def before_encode(self, missing: np.ndarray, *, locked: bool) -> np.ndarray:
        """Misses left after other sources were read (default: all of them)."""
        return missing

    def extra_locks(self) -> list[str]:
        """Further fingerprints whose encode lock the pass must hold."""
        return []

    def prepare(self, missing: np.ndarray) -> None:  # noqa: B027 (an optional hook)
        """Before the lock: a chance to warn about the store's size."""

    # ------------------------------------------------------------------------ the pass
    def run(self) -> None:
        """Read what the store holds, encode the rest once, keep and store it."""
        n = len(self.digests)
        store = self.store
        self.owner._check_model_files(store)
        rows = np.arange(n)
        found = (self.read(self.fingerprint, rows, count=True) if store is not None
                 else np.zeros(n, dtype=bool))
        missing = self.before_encode(rows[~found], locked=False)
        if not len(missing):
            return
        if store is None:
            self._encode(missing)
            return
        self.prepare(missing)
        with contextlib.ExitStack() as locks:
            locks.enter_context(store.encode_lock(self.fingerprint))
            extra = self.extra_locks()
            for fingerprint in extra:
                locks.enter_context(store.encode_lock(fingerprint))
            if extra:
                missing = self.before_encode(missing, locked=True)
            if len(missing):  # what another process encoded meanwhile: read, not encoded
                again = self.read(self.fingerprint, missing, count=False)
                missing = missing[~again]
            if not len(missing):
                return
            cpu = self.owner.device_ == "cpu"
            with encoder.all_cores() if cpu else contextlib.nullcontext():
                self._encode(missing)

    def _encode(self, missing: np.ndarray) -> None:
        guard = self.owner._weights_guard()

        def emit(rows: np.ndarray, batch: Any) -> None:
            self.accept(rows, batch, guard=guard)

        self._guard = guard
        self.encode(missing, emit)

    def accept(self, rows: np.ndarray, batch: Any, *, guard: Any = None,
               fingerprint: str | None = None, keep: bool = True) -> None:
        """Check a finished batch, keep it (``keep``) and store it under ``fingerprint``.

        A kind that writes a batch under another fingerprint as well (a chunked pass's
        first windows) passes it here too, so that it meets the same checks.
        """
        (guard or self._guard).check()
        rows = np.asarray(rows)
        ok = np.asarray(self.finite(batch), dtype=bool)
        if not ok.all():
            bad = int(rows[np.flatnonzero(~ok)[0]])
            raise encoder.NonFiniteError(
                f"{type(self.owner).__name__}: the model produced NaN or infinite values for "
                f"{int((~ok).sum())} of {len(ok)} {self.item}s in a batch, first "
                f"{self.describe(bad)} (weights in {self.owner.precision_}). The weights are "
                "probably damaged (NaN or inf in the checkpoint), or the precision overflows: "
                "try precision='fp32'. Nothing of this batch was returned or stored.")
        batch = self.storable(batch)  # what a read will return: cached == uncached
        if keep:
            self.keep(rows, batch)  # in memory first: a store failure never loses it
        if self._writing:
            try:
                self.write(fingerprint or self.fingerprint, rows, batch)
            except StoreError as exc:
                self._writing = False
                warnings.warn(
                    f"{type(self.owner).__name__}: {exc}. Results are unaffected; the rest "
                    "of this call does not write to the store.", RuntimeWarning, stacklevel=2)

    def describe(self, row: int) -> str:
        """How an error names item ``row`` of the pass."""
        return f"{self.item} {row}"
