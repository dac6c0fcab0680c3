"""The one base of every encoder-backed estimator: what they promise, written once.

:class:`EncoderEstimatorMixin` owns, for :class:`~bertfeat.BertFeaturizer`,
:class:`~bertfeat.BertWordFeaturizer`, :class:`~bertfeat.BertClassifier` and
:class:`~bertfeat.BertRegressor` alike:

* model resolution and the trust policy (:meth:`_resolve_encoder`);
* the device and the concrete precision;
* the fingerprint of the model's files and settings, taken at ``fit`` and checked again
  before every store read, after unpickling and per batch (:meth:`_check_model_files`,
  :meth:`_weights_guard`): vectors are never read, written or returned under a
  fingerprint that does not describe the weights they come from;
* scikit-learn tags for string input, pickles without runtime objects (``_rt_*``);
* the progress rule and the token budget of a forward pass.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import models
from ..engine import precision as auto_precision
from ..engine.batching import DEFAULT_BATCH_TOKENS, DEFAULT_BATCH_TOKENS_GPU, default_batch_tokens
from ..store import FeatureStore, StoreError

__all__ = ["DEFAULT_BATCH_TOKENS", "DEFAULT_BATCH_TOKENS_GPU", "EncoderEstimatorMixin",
           "EncoderSetup", "LayerFeaturesMixin", "WeightsGuard", "usable_store"]

# DEFAULT_BATCH_TOKENS and DEFAULT_BATCH_TOKENS_GPU live in engine.batching (the runtime and
# the calibration read them too); they are re-exported here, their home before.
#: items to encode before ``show_progress="auto"`` shows a bar
PROGRESS_MIN_ITEMS = 256


def usable_store(store: FeatureStore | None, *, stacklevel: int = 3) -> FeatureStore | None:
    """``store`` if its database opens, else ``None`` after a warning (work goes on uncached).

    Parameters
    ----------
    store : FeatureStore or None
    stacklevel : int, default=3
        Of the warning.

    Returns
    -------
    FeatureStore or None
    """
    import warnings

    if store is None:
        return None
    try:
        _ = store.cache  # opens (and creates) the database
    except Exception as exc:  # unwritable or broken location: work without a store
        warnings.warn(
            f"bertfeat: cannot use the feature store at {store.directory} "
            f"({type(exc).__name__}: {exc}); continuing without caching.",
            RuntimeWarning, stacklevel=stacklevel)
        return None
    return store


@dataclass(frozen=True)
class EncoderSetup:
    """What :meth:`EncoderEstimatorMixin._resolve_encoder` decides at ``fit``."""

    info: models.ModelInfo
    device: str
    precision: str


class WeightsGuard:
    """Raise :class:`~bertfeat.models.ModelChangedError` when weight files change mid-run.

    safetensors weights are memory-mapped: bytes written over the file while a pass runs
    change the loaded model under it. :meth:`check` costs a ``stat`` per file and runs
    before each batch is returned or stored; the batches before the change were fine.
    """

    def __init__(self, info: models.ModelInfo, owner: str) -> None:
        self.info = info
        self.owner = owner
        self.at_start = models.weights_stat(info)

    def check(self) -> None:
        """Raise when the weight files are not those the pass started with."""
        if models.weights_stat(self.info) != self.at_start:
            raise models.ModelChangedError(
                f"{self.owner}: model={self.info.spec!r}: the weight files in "
                f"{self.info.path} changed while texts were being encoded; the batches "
                "since cannot be trusted and were neither returned nor stored (those before "
                "were). Run again when whatever writes them has finished.")


class EncoderEstimatorMixin:
    """Shared plumbing of the estimators that run an encoder (see the module docstring).

    A subclass declares its store-independent fingerprint settings when it calls
    :meth:`_take_fingerprint` in ``fit``; everything else is inherited.
    """

    # ------------------------------------------------------------------ sklearn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags

    #: what a fitted estimator holds (a pickle without one of them cannot run); a subclass
    #: lists its own, :meth:`__setstate__` names those an old pickle lacks
    _fitted_attributes: tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        from .. import __version__

        # a copy: on Python >= 3.11 object.__getstate__ returns the live __dict__, and
        # deleting from it would strip the live estimator of its loaded model
        state = dict(super().__getstate__())
        self._add_to_pickle(state)
        for key in [k for k in state if k.startswith("_rt_")]:
            del state[key]  # runtime objects: loaded model, open store, tensors
        state["_bertfeat_version"] = __version__
        return state

    def __setstate__(self, state: dict) -> None:
        """Load a pickle, also one written by an earlier bertfeat, or refuse it clearly.

        A parameter the earlier release did not have takes its default (which keeps that
        release's behaviour); :meth:`_upgrade_state` fills fitted attributes a subclass can
        derive. Any other fitted attribute missing is a ``ValueError`` that names the
        release and the attributes: fit it again.
        """
        import inspect

        state = dict(state)
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if name != "self" and name not in state and \
                    parameter.default is not inspect.Parameter.empty:
                state[name] = parameter.default
        if self._fitted_attributes and self._fitted_attributes[0] in state:  # fitted
            self._upgrade_state(state)
            missing = [a for a in self._fitted_attributes if a not in state]
            if missing:
                from .. import __version__

                made = state.get("_bertfeat_version")
                made = (f"bertfeat {made}" if made else
                        "an earlier bertfeat (one that did not record its version)")
                raise ValueError(
                    f"this fitted {type(self).__name__} was pickled by {made} and lacks "
                    f"{missing}, which bertfeat {__version__} needs; fit it again (with a "
                    "feature store, vectors already stored are read, not encoded again)")
        super().__setstate__(state)

    def _upgrade_state(self, state: dict) -> None:
        """Hook: derive fitted attributes an earlier release did not pickle."""

    def _add_to_pickle(self, state: dict) -> None:
        """Hook: put what the runtime objects hold into ``state`` as plain data."""

    # ------------------------------------------------------------------------ model
    def _concrete_precision(self, device: str, info: models.ModelInfo) -> str:
        """The precision this estimator runs at on ``device`` (``"auto"``: measured once per
        model, device, CPU and torch, :mod:`bertfeat.engine.precision`; fine-tuning
        overrides)."""
        return auto_precision.resolve_precision(self.precision, device, info,
                                                trust_remote_code=self.trust_remote_code)

    def _resolve_encoder(self) -> EncoderSetup:
        """Model (and its trust policy), device and precision, in this order."""
        info = models.resolve_model(self.model, self.revision)
        models.check_custom_code(info, self.trust_remote_code)
        device = models.resolve_device(self.device)
        precision = self._concrete_precision(device, info)
        self._rt_info = info
        return EncoderSetup(info, device, precision)

    def _runtime_info(self) -> models.ModelInfo:
        info = self.__dict__.get("_rt_info")
        if info is None:
            info = models.resolve_model(self.model, self.revision)
            self._rt_info = info
        return info

    def _runtime_store(self) -> FeatureStore | None:
        """The open store of this estimator (``None`` for ``cache=False``)."""
        if "_rt_store" not in self.__dict__:
            self._rt_store = usable_store(FeatureStore.from_cache(self.cache), stacklevel=4)
        return self._rt_store

    # ------------------------------------------------------------------ fingerprint
    #: whether the store's dtype changes this estimator's vectors (text records are kept
    #: in the store's dtype; word records always hold float16 where float16 can)
    _store_dtype_matters = True

    def _store_dtype(self, store: FeatureStore | None) -> str:
        if store is None or not self._store_dtype_matters:
            return "float32"
        return store.dtype

    def _settings_for(self, dtype: str) -> dict:
        """The fingerprint's settings for vectors kept as ``dtype``."""
        settings = dict(self._fingerprint_settings)
        extra = {k: v for k, v in (settings.get("extra") or {}).items() if k != "store_dtype"}
        if dtype != "float32":
            extra["store_dtype"] = dtype  # float16 vectors are other vectors
        settings["extra"] = extra
        return settings

    def _take_fingerprint(self, info: models.ModelInfo, store: FeatureStore | None,
                          settings: dict, description: dict | None = None) -> None:
        """Set ``fingerprint_`` at ``fit``: the files' digests plus ``settings``.

        Taken with or without a store (each weight file is hashed once per process and
        version, and remembered by the store), so that a change of the files is noticed
        by every estimator, after unpickling too, not only by those with a cache.
        """
        self._fingerprint_settings = settings
        self._fingerprint_dtype = self._store_dtype(store)
        self.fingerprint_, self._rt_signature = models.checked_fingerprint(
            info, persistent=store, **self._settings_for(self._fingerprint_dtype))
        if store is not None and description is not None:
            try:
                store.register(self.fingerprint_, description)
            except StoreError:  # bookkeeping only: the vectors are unaffected
                pass

    def _check_model_files(self, store: FeatureStore | None = None) -> None:
        """Make sure the model's files still give the fitted fingerprint.

        A few ``stat`` calls and 128 KiB read per file when nothing changed since the last
        check in this process; after unpickling (a new process) or a change of the files,
        the fingerprint is computed again (weight digests are remembered by the store) and
        must equal ``fingerprint_``. Given a store of another dtype than at ``fit``, the
        fingerprint follows the store's (float16 vectors are other vectors).

        Raises
        ------
        ModelChangedError
            The files changed since ``fit``.
        """
        info = self._runtime_info()
        signature = models.model_signature(info)
        fitted_dtype = self.__dict__.get("_fingerprint_dtype", "float32")
        dtype = self._store_dtype(store)
        if signature == self.__dict__.get("_rt_signature") and dtype == fitted_dtype:
            return
        current, signature = models.checked_fingerprint(
            info, persistent=store, **self._settings_for(fitted_dtype))
        if self.fingerprint_ is None:  # pickled by a release that took none without a store
            self.fingerprint_ = current
        elif current != self.fingerprint_:
            raise models.ModelChangedError(
                f"model={info.spec!r}: the files in {info.path} changed since this "
                f"{type(self).__name__} was fitted (fingerprint {self.fingerprint_} at fit, "
                f"{current} now). Its stored vectors, and any estimator trained on its "
                "output, belong to the old files. Fit it again to use the new files, or put "
                "the old files back.")
        if dtype != fitted_dtype:  # the same files, kept in another dtype from now on
            self.fingerprint_, signature = models.checked_fingerprint(
                info, persistent=store, **self._settings_for(dtype))
            self._fingerprint_dtype = dtype
        self._rt_signature = signature

    def _weights_guard(self) -> WeightsGuard:
        """A per-batch check of the weight files for one pass."""
        return WeightsGuard(self._runtime_info(), type(self).__name__)

    # --------------------------------------------------------------- run-time knobs
    def _token_budget(self) -> int:
        """Most padded tokens per forward pass."""
        if self.max_batch_tokens:
            return int(self.max_batch_tokens)
        return default_batch_tokens(getattr(self, "device_", "cpu"))

    def _show_progress(self, n_items: int) -> bool | str:
        """``show_progress`` resolved: ``"auto"`` for long runs (a bar in a terminal or a
        notebook, periodic log lines elsewhere: :class:`bertfeat.engine.progress.Progress`), else
        False; True (always a bar) and False as given."""
        show = self.show_progress
        if show == "auto":
            return "auto" if n_items >= PROGRESS_MIN_ITEMS else False
        return bool(show)


class LayerFeaturesMixin:
    """What the featurizers of chosen layers share (:class:`~bertfeat.BertFeaturizer`,
    :class:`~bertfeat.BertWordFeaturizer`), beside :class:`EncoderEstimatorMixin`: the length
    limit checked against the model, the fitted shape, the store's description of an
    encoding, and ``get_feature_names_out``.

    A subclass defines ``_feature_names()`` (the column names of its fitted output).
    """

    def _checked_max_length(self, info: models.ModelInfo, minimum: int, room: str) -> int:
        """``max_length`` checked against the model (``room``: what ``minimum`` leaves room
        for, in the error); returns the limit in effect."""
        if self.max_length is not None and self.max_length > info.max_length:
            raise ValueError(
                f"max_length={self.max_length} exceeds the limit of model {info.spec!r} "
                f"({info.max_length} tokens)")
        if self.max_length is not None and self.max_length < minimum:
            raise ValueError(f"max_length must leave room for {room} (>= {minimum})")
        return int(self.max_length or info.max_length)

    @staticmethod
    def _description(info: models.ModelInfo, max_length: int, precision: str,
                     **extra: object) -> dict:
        """What the store records about a fingerprint (``bertfeat cache info`` shows it)."""
        return {"model": info.spec, "path": str(info.path), "revision": info.revision,
                "model_type": info.model_type, "n_layers": info.n_layers,
                "hidden_size": info.hidden_size, "max_length": max_length,
                "precision": precision, **extra}

    def _set_fitted_shape(self, info: models.ModelInfo, layers: list[int], max_length: int,
                          device: str, precision: str) -> None:
        """The fitted attributes both featurizers have, the feature names last."""
        self.layers_ = layers
        self.n_layers_ = info.n_layers
        self.hidden_size_ = info.hidden_size
        self.max_length_ = max_length
        self.device_ = device
        self.precision_ = precision
        self.feature_names_out_ = self._feature_names()
        self.n_features_out_ = len(self.feature_names_out_)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the output columns, saying layer, pooling and dimension.

        Parameters
        ----------
        input_features : None
            Not used: the names depend on the fitted layers and pooling only.

        Returns
        -------
        feature_names_out : ndarray of str
            ``L{layer}_{pooling}_{j}`` (absolute layer numbers); for ``layer_combine``
            mean/sum over several layers ``L{combine}{l1+l2+...}_{pooling}_{j}``. Two-part
            poolings (``mean_max``, ``first_last`` of word pieces) name their first part's
            columns, then their second's.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()
