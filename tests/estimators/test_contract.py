"""The contract of every encoder-backed estimator, proved once for all of them.

In the spirit of scikit-learn's ``check_estimator`` (which skips string-input estimators)
and imbalanced-learn's own estimator checks: each guarantee below is one test,
parametrized over :data:`CASES`. A new encoder-backed estimator joins by one registration
line in ``CASES``; a guarantee that holds for one estimator and not another fails here.

The guarantees: parameters stored verbatim and ``clone`` works; a pickle holds no tensor
(no torch global at all); stored == fresh within the store's stated bound; weight files
overwritten mid-run -> ``ModelChangedError`` and nothing wrong stored; NaN weights ->
``NonFiniteError``; values beyond float16's range returned as they are (never clamped);
unpickled after the files changed -> ``ModelChangedError`` (or, for an estimator that
carries its own trained weights, the same predictions as before); bad input named by row;
``batch_size=True`` refused.
"""

from __future__ import annotations

import pickle
import pickletools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone

from bertfeat import (
    BertClassifier,
    BertFeaturizer,
    BertRegressor,
    BertWordFeaturizer,
    FeatureStore,
    encoder,
    models,
    wordencoder,
)
from bertfeat.encoder import NonFiniteError

from ..conftest import make_tiny_model
from ..equality import assert_within_bound

TEXTS = ["good film", "awful plot", "what a great story", "boring acting", "i love it",
         "not very fun", "the music was long", "a short answer"]
LABELS = [1, 0, 1, 0, 1, 0, 0, 1]
SENTENCES = [t.split() for t in TEXTS]


@dataclass
class Case:
    """How the contract drives one estimator."""

    name: str
    make: Callable[..., Any]          # make(model_dir, cache) -> unfitted estimator
    X: list
    y: list | None
    output: Callable[[Any, list], np.ndarray]  # a fitted estimator's output on X
    bad_X: list                       # X with a missing row 2
    bad_match: str                    # the error names the row
    forward: tuple[Any, str] | None   # (module, name) of the batch generator to interrupt
    uses_store: bool = True
    carries_weights: bool = False     # the fitted estimator pickles its own weights
    store_dtype: str = "float32"      # how its vectors are kept (for the bound)
    fit_kwargs: dict = field(default_factory=dict)

    def fit(self, estimator: Any) -> Any:
        return estimator.fit(self.X, self.y) if self.y is not None else estimator.fit(self.X)


def _featurizer(model, cache):
    return BertFeaturizer(model=str(model), precision="fp32", device="cpu", cache=cache,
                          layers=[0, -1], batch_size=2)


def _words(model, cache):
    return BertWordFeaturizer(model=str(model), precision="fp32", device="cpu", cache=cache,
                              layers=[0, -1], subword_pooling="mean", batch_size=2)


def _finetune(cls):
    def make(model, cache):
        return cls(model=str(model), precision="fp32", device="cpu", epochs=1, batch_size=4,
                   random_state=0, show_progress=False)
    return make


CASES = [
    Case("BertFeaturizer", _featurizer, TEXTS, None, lambda e, X: e.transform(X),
         TEXTS[:2] + [None], "Row 2", (encoder, "_forward_batches")),
    Case("BertWordFeaturizer", _words, SENTENCES, None, lambda e, X: e.transform(X),
         SENTENCES[:2] + [None], "Sentence 2", (wordencoder, "_forward"),
         store_dtype="float16"),
    Case("BertClassifier", _finetune(BertClassifier), TEXTS, LABELS,
         lambda e, X: e.predict_proba(X), TEXTS[:2] + [None], "Row 2", None,
         uses_store=False, carries_weights=True),
    Case("BertRegressor", _finetune(BertRegressor), TEXTS, [float(v) for v in LABELS],
         lambda e, X: e.predict(X), TEXTS[:2] + [None], "Row 2", None,
         uses_store=False, carries_weights=True),
]
BY_NAME = {case.name: case for case in CASES}
STORED = [c.name for c in CASES if c.uses_store]
ALL = [c.name for c in CASES]


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A tiny model of this test's own: the contract rewrites its files."""
    return make_tiny_model(tmp_path / "model", seed=1)


def _weights(model_dir: Path) -> Path:
    return model_dir / "model.safetensors"


def _other_weights(tmp_path: Path) -> bytes:
    other = make_tiny_model(tmp_path / "other", seed=2)
    return _weights(other).read_bytes()


def _torch_globals(blob: bytes) -> list[str]:
    """Module names of the globals a pickle would import."""
    names, strings = [], []
    for op, arg, _ in pickletools.genops(blob):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif op.name == "GLOBAL":
            names.append(str(arg).split(" ")[0])
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            names.append(strings[-2])
    return [n for n in names if n.split(".")[0] == "torch"]


# ------------------------------------------------------------------ sklearn plumbing


@pytest.mark.parametrize("name", ALL)
def test_params_are_stored_verbatim_and_clone_works(name, tmp_path):
    import inspect

    case = BY_NAME[name]
    estimator = case.make(tmp_path / "not-loaded", False)  # nothing is loaded or checked
    names = [p for p in inspect.signature(type(estimator).__init__).parameters if p != "self"]
    assert sorted(vars(estimator)) == sorted(names)  # __init__ stores its arguments, only
    twin = clone(estimator)  # scikit-learn refuses estimators that change a parameter
    assert twin.get_params() == estimator.get_params() and twin is not estimator


@pytest.mark.parametrize("name", ALL)
def test_batch_size_true_is_refused(name, model_dir):
    case = BY_NAME[name]
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        case.fit(case.make(model_dir, False).set_params(batch_size=True))


@pytest.mark.parametrize("name", ALL)
def test_a_pickle_holds_no_tensor(name, model_dir, tmp_path):
    case = BY_NAME[name]
    fitted = case.fit(case.make(model_dir, str(tmp_path / "store")))
    expected = case.output(fitted, case.X)
    blob = pickle.dumps(fitted)
    assert _torch_globals(blob) == [], "a torch object was pickled"
    assert len(blob) < (2_000_000 if case.carries_weights else 20_000)
    np.testing.assert_array_equal(case.output(pickle.loads(blob), case.X), expected)


@pytest.mark.parametrize("name", ALL)
def test_bad_input_is_named_by_row(name, model_dir):
    case = BY_NAME[name]
    fitted = case.fit(case.make(model_dir, False))
    with pytest.raises(ValueError, match=case.bad_match):
        case.output(fitted, case.bad_X)


# ---------------------------------------------------------------- the store's promise


@pytest.mark.parametrize("name", STORED)
def test_stored_equals_fresh(name, model_dir, tmp_path, encode_spy):
    case = BY_NAME[name]
    store = FeatureStore(tmp_path / "store")
    cold = case.output(case.fit(case.make(model_dir, store)), case.X)
    warm_estimator = case.fit(case.make(model_dir, store))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(*case.forward, _forbidden)
        warm = case.output(warm_estimator, case.X)  # every item read from the store
    np.testing.assert_array_equal(warm, cold)  # the same computation: bit for bit
    fresh = case.output(case.fit(case.make(model_dir, False)), case.X)
    assert_within_bound(warm, fresh, store_dtype=case.store_dtype)


def _forbidden(*args, **kwargs):
    raise AssertionError("the encoder ran: the store should have served every item")


@pytest.mark.parametrize("name", STORED)
def test_weights_overwritten_mid_run_raise_and_store_nothing_wrong(name, model_dir, tmp_path,
                                                                  monkeypatch):
    case = BY_NAME[name]
    store = FeatureStore(tmp_path / "store")
    fitted = case.fit(case.make(model_dir, store))
    original = _weights(model_dir).read_bytes()
    other = _other_weights(tmp_path)
    module, attr = case.forward
    real = getattr(module, attr)

    def overwrite_after_the_first_batch(*args, **kwargs):
        batches = real(*args, **kwargs)
        yield next(batches)
        with open(_weights(model_dir), "r+b") as fh:  # in place: the same inode
            fh.write(other)
        yield from batches

    monkeypatch.setattr(module, attr, overwrite_after_the_first_batch)
    with pytest.raises(models.ModelChangedError, match="changed while"):
        case.output(fitted, case.X)
    monkeypatch.setattr(module, attr, real)
    with open(_weights(model_dir), "r+b") as fh:  # the old weights back, in place
        fh.write(original)
    models.forget_loaded()
    again = case.output(case.fit(case.make(model_dir, store)), case.X)  # partly stored
    fresh = case.output(case.fit(case.make(model_dir, False)), case.X)
    assert_within_bound(again, fresh, store_dtype=case.store_dtype)


def _poison(model_dir: Path, value: float, suffix: str) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(_weights(model_dir)))
    key = next(k for k in weights if k.endswith(suffix))
    weights[key][...] = value
    save_file(weights, str(_weights(model_dir)), metadata={"format": "pt"})
    models.forget_loaded()


@pytest.mark.parametrize("name", ALL)
def test_nan_weights_raise_non_finite_and_store_nothing(name, model_dir, tmp_path):
    case = BY_NAME[name]
    _poison(model_dir, float("nan"), "word_embeddings.weight")
    store = FeatureStore(tmp_path / "store")
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        case.output(case.fit(case.make(model_dir, store)), case.X)
    assert store.stats()["entries"] == 0


@pytest.mark.parametrize("name", STORED)
def test_values_beyond_float16_are_returned_not_clamped(name, model_dir, tmp_path):
    case = BY_NAME[name]
    # the embedding LayerNorm's scale: the embedding output (layer 0) reaches ~1e6
    _poison(model_dir, 1e6, "embeddings.LayerNorm.weight")
    store = FeatureStore(tmp_path / "store")
    out = case.output(case.fit(case.make(model_dir, store)), case.X)
    assert np.isfinite(out).all() and np.abs(out).max() > 1e5
    again = case.output(case.fit(case.make(model_dir, store)), case.X)  # from the store
    np.testing.assert_array_equal(again, out)


@pytest.mark.parametrize("name", ALL)
def test_unpickled_after_the_files_changed(name, model_dir, tmp_path):
    case = BY_NAME[name]
    original, other = _weights(model_dir).read_bytes(), _other_weights(tmp_path)
    for cache in ((str(tmp_path / "store"), False) if case.uses_store else (False,)):
        _weights(model_dir).write_bytes(original)
        models.forget_loaded()
        fitted = case.fit(case.make(model_dir, cache))
        expected = case.output(fitted, case.X)
        blob = pickle.dumps(fitted)
        _weights(model_dir).write_bytes(other)  # as a new process would find them
        models.forget_loaded()
        restored = pickle.loads(blob)
        if case.carries_weights:  # its own trained weights: the base files do not matter
            np.testing.assert_array_equal(case.output(restored, case.X), expected)
        else:
            with pytest.raises(models.ModelChangedError, match="changed since"):
                case.output(restored, case.X)


def test_every_encoder_backed_estimator_is_registered():
    """A new estimator on the shared base must join the contract (one line in CASES)."""
    import bertfeat
    from bertfeat.base import EncoderEstimatorMixin

    public = {name for name in bertfeat.__all__
              if isinstance(getattr(bertfeat, name), type)
              and issubclass(getattr(bertfeat, name), EncoderEstimatorMixin)}
    assert public == set(BY_NAME)


@pytest.mark.parametrize("cache", ["store", False])
def test_export_refuses_weights_changed_since_fit(model_dir, tmp_path, cache):
    """``export_pipeline`` exports the weights the pipeline was fitted with, or refuses."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from bertfeat.export import export_pipeline

    store = str(tmp_path / "store") if cache else False
    pipe = make_pipeline(_featurizer(model_dir, store), LogisticRegression()).fit(TEXTS, LABELS)
    blob = pickle.dumps(pipe)
    _weights(model_dir).write_bytes(_other_weights(tmp_path))
    models.forget_loaded()
    with pytest.raises(models.ModelChangedError, match="changed since"):
        export_pipeline(pickle.loads(blob), tmp_path / "export")
    assert not (tmp_path / "export" / "manifest.json").exists()
