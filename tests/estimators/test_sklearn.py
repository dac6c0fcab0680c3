"""Issue 2, behaviours 1 and 3: ``BertFeaturizer`` as a first-class scikit-learn transformer.

Covers ``clone``, ``get_params``/``set_params``, ``Pipeline``/``make_pipeline``,
``cross_val_score``, ``GridSearchCV(n_jobs=2)`` (loky processes) over ``layers`` and
``pooling``, ``ColumnTransformer`` on a DataFrame text column, ``set_output(transform="pandas")``,
``get_feature_names_out``, ``NotFittedError`` before fit, an ``__init__`` that does nothing,
lazy model loading and pickles that hold no weights.

scikit-learn's estimator checks
-------------------------------
``check_estimator`` runs nothing for this estimator: its tags say ``two_d_array=False,
string=True`` (it takes one text per row), and scikit-learn skips every check for such an
estimator. So the checks are run one by one:

Run as they are (they need no data, or only check how non-text data is refused):
``check_estimator_cloneable``, ``check_estimator_tags_renamed``, ``check_valid_tag_types``,
``check_estimator_repr``, ``check_no_attributes_set_in_init``,
``check_do_not_raise_errors_in_init_or_set_params``, ``check_mixin_order``,
``check_parameters_default_constructible``, ``check_get_params_invariance``,
``check_set_params``, ``check_transformers_unfitted``, ``check_get_feature_names_out_error``,
``check_estimator_sparse_tag``, ``check_estimator_sparse_array``,
``check_estimator_sparse_matrix``.

Do NOT apply as written (scikit-learn's versions feed numeric 2-D arrays, which a text
transformer must refuse), so each is re-done here on texts, same property, text data:
``check_dont_overwrite_parameters``, ``check_estimators_overwrite_params``,
``check_dict_unchanged``, ``check_estimators_fit_returns_self``, ``check_fit_idempotent``,
``check_fit_check_is_fitted``, ``check_methods_subset_invariance``,
``check_methods_sample_order_invariance``, ``check_transformer_general``,
``check_estimators_pickle``, ``check_pipeline_consistency``, ``check_fit_score_takes_y``,
``check_n_features_in`` (1-column DataFrame), ``check_transformer_preserve_dtypes`` (output is
always float32), ``check_transformer_data_not_an_array`` (a non-list sequence),
``check_fit1d``/``check_fit2d_1sample`` (a single text), ``check_estimators_empty_data_messages``
(no rows gives 0 x d, not sklearn's numeric "0 feature(s)" message); in ``test_inputs.py``:
``check_estimators_nan_inf`` (missing rows; texts have no inf), ``check_estimators_dtypes`` and
``check_dtype_object`` (str and object arrays), ``check_readonly_memmap_input`` (a read-only
array: object arrays cannot be memory-mapped).

Do NOT apply at all, and why:

* Numeric input with no text meaning: ``check_fit2d_1feature``, ``check_fit2d_predict1d``,
  ``check_f_contiguous_array_estimator``, ``check_complex_data``,
  ``check_positive_only_tag_during_fit``, ``check_fit_non_negative``, the
  ``check_array_api_*`` checks (array namespaces hold numbers, not strings).
* They return early for a non-``two_d_array`` estimator, so they would pass without testing
  anything: ``check_n_features_in_after_fitting``,
  ``check_dataframe_column_names_consistency``, ``check_set_output_transform``,
  ``check_set_output_transform_pandas``, ``check_global_output_transform_pandas``,
  ``check_transformer_get_feature_names_out`` and ``..._pandas`` (their properties are tested
  on texts here: ``set_output``, ``get_feature_names_out``, ``ColumnTransformer``).
* ``check_param_validation``: needs a ``_parameter_constraints`` table; parameters are
  validated by hand in ``fit`` (tested in ``test_models.py``).
* ``check_transformer_n_iter``: vacuous, there is no ``max_iter``.
  ``check_transformers_unfitted_stateless``: only for ``requires_fit=False``.
* For other estimator kinds or features this one does not have: classifier, regressor,
  cluster and outlier checks, ``check_estimators_unfitted`` (predict methods),
  ``check_sample_weight*``, ``check_requires_y_none``, ``check_supervised_y_*``,
  ``check_sparsify_coefficients``, ``check_nonsquare_error`` (pairwise),
  ``check_estimators_partial_fit_n_features``, ``check_decision_proba_consistency``.
"""

from __future__ import annotations

import inspect
import json
import pickle
import subprocess
import sys
import textwrap
import warnings
from collections import UserList
from collections.abc import Sequence

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils import estimator_checks as ec
from sklearn.utils.validation import check_is_fitted

from bertfeat import BertFeaturizer, models
from bertfeat.engine import precision as auto_precision

from ..conftest import make_tiny_model
from ..equality import assert_same_computation, assert_within_bound

POSITIVE = ["good", "great", "love", "fun"]
NEGATIVE = ["bad", "awful", "hate", "boring"]
FILLER = ["the", "film", "movie", "plot", "story", "acting", "music", "was", "very", "it"]


def _dataset(n: int = 40, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, size=rng.integers(2, 8)))
        words += list(rng.choice(POSITIVE if label else NEGATIVE, size=2))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.asarray(labels)


TEXTS, LABELS = _dataset()

DEFAULTS = dict(
    model="default", layers=-1, pooling="auto", layer_combine="concat", max_length=None,
    batch_size=128, device="auto", precision="auto", revision=None, cache="auto",
    normalize="auto", show_progress="auto",
)


def _featurizer(tiny_model: str, **params) -> BertFeaturizer:
    params.setdefault("cache", False)
    params.setdefault("precision", "fp32")
    return BertFeaturizer(model=tiny_model, **params)


@pytest.fixture(scope="module")
def fitted(tiny_model):
    return _featurizer(tiny_model).fit(TEXTS)


# ----------------------------------------------------------------- parameters and cloning
def test_public_signature_and_defaults():
    params = BertFeaturizer().get_params()
    for name, value in DEFAULTS.items():
        assert params[name] == value, name
    assert list(inspect.signature(BertFeaturizer).parameters)[: len(DEFAULTS)] == list(DEFAULTS)


def test_get_params_returns_arguments_unchanged():
    layers = [-1, -2]
    featurizer = BertFeaturizer(model="some/dir", layers=layers, pooling="cls", cache=False)
    params = featurizer.get_params()
    assert params["layers"] is layers  # stored unchanged, not copied or converted
    assert params["model"] == "some/dir"
    assert params["pooling"] == "cls"
    assert params["cache"] is False


def test_set_params_returns_self_and_changes_params():
    featurizer = BertFeaturizer()
    assert featurizer.set_params(layers=[1, 2], pooling="max") is featurizer
    assert featurizer.layers == [1, 2]
    assert featurizer.pooling == "max"
    with pytest.raises(ValueError, match="Invalid parameter"):
        featurizer.set_params(no_such_param=1)


def test_clone_keeps_params_and_drops_fitted_state(fitted, tmp_path):
    store = str(tmp_path / "store")
    original = clone(fitted).set_params(layers=[0, -1], cache=store, normalize=True)
    copy = clone(original)
    assert copy is not original
    assert copy.get_params() == original.get_params()
    assert copy.cache == store  # the store location survives clone as a plain string
    fitted_copy = clone(fitted)
    assert not hasattr(fitted_copy, "layers_")
    with pytest.raises(NotFittedError):
        fitted_copy.transform(["good"])


def test_init_does_nothing(monkeypatch, tmp_path):
    """No model resolution, loading, device probing or validation in ``__init__``."""
    def forbidden(*args, **kwargs):
        raise AssertionError("model machinery touched outside fit/transform")

    for name in ("resolve_model", "load", "load_shared", "resolve_device", "fingerprint"):
        monkeypatch.setattr(models, name, forbidden)
    monkeypatch.setattr(auto_precision, "resolve_precision", forbidden)
    monkeypatch.setattr(models.loading, "load", forbidden)  # as load_shared looks it up
    featurizer = BertFeaturizer(model=str(tmp_path / "does-not-exist"), layers=99,
                                pooling="bogus", device="cuda:7", precision="fp16",
                                batch_size=-5, cache=object())
    assert featurizer.layers == 99
    featurizer.set_params(pooling="also-bogus")
    copy = clone(featurizer)
    repr(copy)
    pickle.loads(pickle.dumps(BertFeaturizer(model="x")))
    assert not (tmp_path / "does-not-exist").exists()
    assert not (tmp_path / "bertfeat-store").exists()  # the default store is not created
    with pytest.raises(AssertionError, match="model machinery"):
        BertFeaturizer(model="x").fit(["a"])  # fit is where the work starts


def test_not_fitted_errors(tiny_model):
    featurizer = _featurizer(tiny_model)
    with pytest.raises(NotFittedError):
        featurizer.transform(["good"])
    with pytest.raises(NotFittedError):
        featurizer.get_feature_names_out()
    with pytest.raises(NotFittedError):
        check_is_fitted(featurizer)
    featurizer.fit(["good"])
    check_is_fitted(featurizer)


# ------------------------------------------------------------------- sklearn estimator checks
DIRECT_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_transformers_unfitted",
    "check_get_feature_names_out_error",
    "check_estimator_sparse_tag",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
]


@pytest.mark.parametrize("check", DIRECT_CHECKS)
def test_sklearn_estimator_check(tiny_model, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        getattr(ec, check)("BertFeaturizer", _featurizer(tiny_model))


def test_check_estimator_skips_text_transformer(tiny_model):
    """Why the checks above run one by one: the tags route this estimator around them."""
    tags = _featurizer(tiny_model).__sklearn_tags__()
    assert tags.input_tags.string is True
    assert tags.input_tags.two_d_array is False
    assert tags.requires_fit is True


def test_dont_overwrite_parameters(tiny_model):
    featurizer = _featurizer(tiny_model, layers=[1, -1])
    before = dict(vars(featurizer))
    params_before = joblib.hash(featurizer.get_params())
    featurizer.fit(TEXTS, LABELS)
    assert joblib.hash(featurizer.get_params()) == params_before
    assert featurizer.layers == [1, -1]  # not replaced by the resolved [1, 3]
    added = set(vars(featurizer)) - set(before)
    public = [a for a in added if not a.startswith("_") and not a.endswith("_")]
    assert not public, f"fit added public non-fitted attributes {public}"
    assert {"layers_", "n_features_out_", "feature_names_out_"} <= added


def test_fit_returns_self_and_takes_y(tiny_model):
    featurizer = _featurizer(tiny_model)
    assert featurizer.fit(TEXTS) is featurizer
    assert featurizer.fit(TEXTS, LABELS) is featurizer
    assert featurizer.fit(TEXTS, y=None) is featurizer
    assert list(inspect.signature(featurizer.fit).parameters)[:2] == ["X", "y"]


def test_transform_does_not_change_state(fitted):
    before = {k: joblib.hash(v) for k, v in vars(fitted).items() if not k.startswith("_rt_")}
    fitted.transform(TEXTS[:5])
    after = {k: joblib.hash(v) for k, v in vars(fitted).items() if not k.startswith("_rt_")}
    assert after == before


def test_fit_idempotent(tiny_model):
    featurizer = _featurizer(tiny_model, layers=[0, 2], pooling="max")
    first = featurizer.fit(TEXTS).transform(TEXTS)
    names = featurizer.get_feature_names_out()
    fingerprint = featurizer.fingerprint_
    second = featurizer.fit(TEXTS[:3]).transform(TEXTS)
    assert_same_computation(first, second)
    np.testing.assert_array_equal(names, featurizer.get_feature_names_out())
    assert featurizer.fingerprint_ == fingerprint


def test_output_width_does_not_depend_on_data(tiny_model):
    a = _featurizer(tiny_model).fit(TEXTS[:2])
    b = _featurizer(tiny_model).fit(["x"] * 30)
    assert a.n_features_out_ == b.n_features_out_ == 32
    assert a.transform(["one"]).shape == (1, 32)


def test_methods_subset_invariance(fitted):
    full = fitted.transform(TEXTS)
    parts = np.concatenate([fitted.transform(TEXTS[i:i + 7]) for i in range(0, len(TEXTS), 7)])
    assert_within_bound(parts, full)


def test_methods_sample_order_invariance(fitted):
    full = fitted.transform(TEXTS)
    order = np.random.default_rng(1).permutation(len(TEXTS))
    shuffled = fitted.transform([TEXTS[i] for i in order])
    assert_within_bound(shuffled, full[order])


def test_transformer_general(tiny_model):
    featurizer = _featurizer(tiny_model, layers="all", pooling="mean_max")
    once = featurizer.fit_transform(TEXTS, LABELS)
    again = featurizer.fit(TEXTS).transform(TEXTS)
    np.testing.assert_allclose(once, again, rtol=0, atol=1e-6)
    np.testing.assert_allclose(featurizer.transform(TEXTS), once, rtol=0, atol=1e-6)
    assert once.shape == (len(TEXTS), featurizer.n_features_out_) == (len(TEXTS), 4 * 64)
    assert once.dtype == np.float32  # check_transformer_preserve_dtypes: always float32
    assert np.isfinite(once).all()


def test_single_text_and_empty_input(fitted):
    assert fitted.transform(["just one"]).shape == (1, 32)
    empty = fitted.transform([])
    assert empty.shape == (0, 32) and empty.dtype == np.float32


class _TextSequence(Sequence):
    def __init__(self, items):
        self._items = list(items)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]


@pytest.mark.parametrize("wrap", [UserList, _TextSequence], ids=["UserList", "Sequence"])
def test_transformer_data_not_a_list(fitted, wrap):
    np.testing.assert_allclose(fitted.transform(wrap(TEXTS)), fitted.transform(TEXTS),
                               rtol=0, atol=1e-6)


def test_n_features_in_and_feature_names_in(tiny_model):
    featurizer = _featurizer(tiny_model)
    featurizer.fit(pd.DataFrame({"review": TEXTS}))
    assert featurizer.n_features_in_ == 1
    assert featurizer.feature_names_in_.tolist() == ["review"]
    featurizer.fit(TEXTS)  # refit on a list forgets the column name
    assert not hasattr(featurizer, "n_features_in_")
    assert not hasattr(featurizer, "feature_names_in_")


def test_pickle_round_trip(fitted):
    expected = fitted.transform(TEXTS)
    payload = pickle.dumps(fitted)
    assert b"torch" not in payload
    assert len(payload) < 20_000
    restored = pickle.loads(payload)
    assert restored.get_params() == fitted.get_params()
    np.testing.assert_array_equal(restored.get_feature_names_out(),
                                  fitted.get_feature_names_out())
    assert_same_computation(restored.transform(TEXTS), expected)


def test_pipeline_consistency(fitted):
    pipe = Pipeline([("bert", clone(fitted))]).fit(TEXTS)
    assert_same_computation(pipe.transform(TEXTS), fitted.transform(TEXTS))


# ---------------------------------------------------------------------------- composition
def test_pipeline_and_make_pipeline(tiny_model):
    pipe = make_pipeline(_featurizer(tiny_model), LogisticRegression(max_iter=1000))
    assert list(pipe.named_steps) == ["bertfeaturizer", "logisticregression"]
    pipe.fit(TEXTS, LABELS)
    assert pipe.predict(TEXTS).shape == (len(TEXTS),)
    assert set(pipe.predict(TEXTS)) <= {0, 1}
    named = Pipeline([("bert", _featurizer(tiny_model)), ("clf", LogisticRegression())])
    named.set_params(bert__layers=-2, bert__pooling="cls")
    named.fit(TEXTS, LABELS)
    assert named.named_steps["bert"].layers_ == [2]
    assert named.named_steps["bert"].get_feature_names_out()[0] == "L2_cls_0"
    assert 0.0 <= named.score(TEXTS, LABELS) <= 1.0


def test_cross_val_score(tiny_model):
    pipe = make_pipeline(_featurizer(tiny_model), LogisticRegression(max_iter=1000))
    scores = cross_val_score(pipe, TEXTS, LABELS, cv=KFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,)
    assert np.isfinite(scores).all()


def test_cross_val_score_on_series_and_dataframe(tiny_model):
    pipe = make_pipeline(_featurizer(tiny_model), LogisticRegression(max_iter=1000))
    series = pd.Series(TEXTS, index=np.arange(100, 100 + len(TEXTS)))
    a = cross_val_score(pipe, series, LABELS, cv=3)
    b = cross_val_score(pipe, series.to_frame("text"), LABELS, cv=3)
    c = cross_val_score(pipe, TEXTS, LABELS, cv=3)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, c)


@pytest.mark.slow  # two loky worker processes import torch and transformers
def test_grid_search_parallel_over_layers_and_pooling(tiny_model, tmp_path):
    """GridSearchCV with two loky worker processes, sharing an on-disk store."""
    pipe = make_pipeline(
        _featurizer(tiny_model, cache=str(tmp_path / "store")),
        LogisticRegression(max_iter=1000),
    )
    grid = {"bertfeaturizer__layers": [-1, 1, [1, -1]],
            "bertfeaturizer__pooling": ["cls", "mean"]}
    cv = KFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, grid, cv=cv, n_jobs=2).fit(TEXTS, LABELS)
    assert len(search.cv_results_["params"]) == 6
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["bertfeaturizer__pooling"] in {"cls", "mean"}
    best = search.best_estimator_.named_steps["bertfeaturizer"]
    assert best.layers == search.best_params_["bertfeaturizer__layers"]
    assert search.predict(TEXTS[:3]).shape == (3,)

    # the same search in this process, without any store, scores the same
    pipe.set_params(bertfeaturizer__cache=False)
    serial = GridSearchCV(pipe, grid, cv=cv, n_jobs=1).fit(TEXTS, LABELS)
    np.testing.assert_allclose(serial.cv_results_["mean_test_score"],
                               search.cv_results_["mean_test_score"], rtol=0, atol=1e-12)


def test_column_transformer_on_dataframe_text_column(tiny_model, fitted):
    frame = pd.DataFrame({"text": TEXTS, "length": [len(t) for t in TEXTS]},
                         index=np.arange(500, 500 + len(TEXTS)))
    expected = fitted.transform(TEXTS)
    for selector in ("text", ["text"]):
        ct = ColumnTransformer([("bert", _featurizer(tiny_model), selector),
                                ("num", "passthrough", ["length"])])
        out = ct.fit_transform(frame)
        assert out.shape == (len(TEXTS), 33)
        np.testing.assert_allclose(out[:, :32], expected, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(out[:, 32], frame["length"].to_numpy())
        names = ct.get_feature_names_out()
        assert names[0] == "bert__L3_mean_0" and names[31] == "bert__L3_mean_31"
        assert names[-1] == "num__length"
        pipe = make_pipeline(ct, LogisticRegression(max_iter=1000)).fit(frame, LABELS)
        assert pipe.predict(frame.iloc[:4]).shape == (4,)
        pandas_out = ct.set_output(transform="pandas").fit_transform(frame)
        assert pandas_out.index.tolist() == frame.index.tolist()
        assert pandas_out.columns[0] == "bert__L3_mean_0"


def test_set_output_pandas(tiny_model):
    series = pd.Series(TEXTS[:5], index=list("abcde"))
    featurizer = _featurizer(tiny_model).set_output(transform="pandas")
    out = featurizer.fit_transform(series)
    assert isinstance(out, pd.DataFrame)
    assert out.index.tolist() == list("abcde")
    assert out.columns.tolist() == featurizer.get_feature_names_out().tolist()
    assert (out.dtypes == np.float32).all()
    out_list = featurizer.transform(TEXTS[:5])  # a list has no index: a RangeIndex
    assert out_list.index.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(out_list.to_numpy(), out.to_numpy(), rtol=0, atol=1e-6)
    featurizer.set_output(transform="default")
    assert isinstance(featurizer.transform(series), np.ndarray)


# ------------------------------------------------------------------------------ feature names
@pytest.mark.parametrize(
    "params, width, first, last",
    [
        (dict(), 32, "L3_mean_0", "L3_mean_31"),
        (dict(layers=-2, pooling="cls"), 32, "L2_cls_0", "L2_cls_31"),
        (dict(layers=0, pooling="max"), 32, "L0_max_0", "L0_max_31"),
        (dict(layers=[0, -1]), 64, "L0_mean_0", "L3_mean_31"),
        (dict(layers="all", pooling="cls"), 128, "L0_cls_0", "L3_cls_31"),
        (dict(pooling="mean_max"), 64, "L3_mean_0", "L3_max_31"),
        (dict(pooling="first_last", layers=-1), 32, "L3_first_last_0", "L3_first_last_31"),
        (dict(layers=[1, -1], layer_combine="mean"), 32, "Lmean1+3_mean_0", "Lmean1+3_mean_31"),
        (dict(layers=[0, 1, 2], layer_combine="sum", pooling="max"), 32,
         "Lsum0+1+2_max_0", "Lsum0+1+2_max_31"),
        (dict(layers=[2], layer_combine="mean"), 32, "L2_mean_0", "L2_mean_31"),
        (dict(pooling="pooler"), 32, "L3_pooler_0", "L3_pooler_31"),
    ],
)
def test_feature_names_say_layer_and_pooling(tiny_model, params, width, first, last):
    featurizer = _featurizer(tiny_model, **params).fit(["x"])
    names = featurizer.get_feature_names_out()
    assert isinstance(names, np.ndarray) and names.dtype == object
    assert len(names) == width == featurizer.n_features_out_
    assert len(set(names)) == width
    assert names[0] == first and names[-1] == last
    assert featurizer.transform(["good film"]).shape == (1, width)
    names[0] = "changed"  # a copy: the fitted names stay intact
    assert featurizer.get_feature_names_out()[0] == first


def test_concat_names_follow_layer_order(tiny_model):
    names = _featurizer(tiny_model, layers=[-1, 0]).fit(["x"]).get_feature_names_out()
    assert names[0] == "L3_mean_0" and names[32] == "L0_mean_0"


# ----------------------------------------------------------------------------- lazy loading
def test_model_loads_on_first_transform_only(tiny_model, monkeypatch):
    calls = []
    real_load = models.load

    def spy(info, **kwargs):
        calls.append(kwargs)
        return real_load(info, **kwargs)

    monkeypatch.setattr(models.loading, "load", spy)
    models.forget_loaded()
    featurizer = _featurizer(tiny_model)
    assert calls == []
    featurizer.fit(TEXTS)
    assert calls == [], "fit must not load the weights"
    featurizer.transform(TEXTS[:3])
    assert len(calls) == 1
    featurizer.transform(TEXTS[3:6])
    clone(featurizer).fit(TEXTS).transform(TEXTS[6:9])  # clones share the loaded model
    assert len(calls) == 1
    assert calls[0]["depth"] == 3
    assert calls[0]["trust_remote_code"] is False  # off unless the user opts in


def _big_tiny_model(tmp_path_factory) -> str:
    # a model whose weights (~4 MB) are far above the 1 MB pickle limit
    return str(make_tiny_model(tmp_path_factory.mktemp("wide-bert"), hidden=256, layers=2))


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> str:
    return _big_tiny_model(tmp_path_factory)


def test_wide_model_is_bigger_than_the_pickle_limit(wide_model):
    from pathlib import Path

    weights = sum(f.stat().st_size for f in Path(wide_model).glob("*.safetensors"))
    assert weights > 2_000_000  # so the < 1 MB assertion below can catch leaked weights


def test_joblib_dump_of_fitted_pipeline_holds_no_weights(wide_model, tmp_path):
    pipe = make_pipeline(_featurizer(wide_model), LogisticRegression(max_iter=1000))
    pipe.fit(TEXTS, LABELS)
    expected_proba = pipe.predict_proba(TEXTS)  # the model is loaded now
    expected = pipe.predict(TEXTS)
    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    assert path.stat().st_size < 1_000_000
    assert b"torch" not in path.read_bytes()

    models.forget_loaded()  # a fresh featurizer state: nothing loaded in this process
    restored = joblib.load(path)
    featurizer = restored.named_steps["bertfeaturizer"]
    assert not any(k.startswith("_rt_") for k in vars(featurizer))
    np.testing.assert_array_equal(restored.predict(TEXTS), expected)
    np.testing.assert_allclose(restored.predict_proba(TEXTS), expected_proba,
                               rtol=0, atol=1e-6)


@pytest.mark.slow  # a fresh interpreter imports torch and transformers
def test_joblib_pipeline_predicts_identically_in_a_fresh_process(tiny_model, tmp_path):
    pipe = make_pipeline(_featurizer(tiny_model, layers=[1, -1], pooling="mean_max"),
                         LogisticRegression(max_iter=1000)).fit(TEXTS, LABELS)
    expected = pipe.predict_proba(TEXTS)
    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    script = textwrap.dedent(f"""
        import json, sys, joblib
        pipe = joblib.load({str(path)!r})
        texts = json.loads(sys.stdin.read())
        print(json.dumps(pipe.predict_proba(texts).tolist()))
    """)
    result = subprocess.run([sys.executable, "-c", script], input=json.dumps(TEXTS),
                            capture_output=True, text=True, timeout=300, check=True)
    got = np.asarray(json.loads(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
