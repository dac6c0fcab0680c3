"""Issue 11 (parameters validated by scikit-learn's machinery) and the parameter items of
issue 12 (12.1: ``trust_remote_code`` takes only a real boolean; 12.10: ``show_progress``,
``cache=""``, ``device``, ``chunk_stride`` without chunking).

Every error is scikit-learn's ``InvalidParameterError`` (both a ``ValueError`` and a
``TypeError``) naming the parameter, raised by ``fit`` (never by ``__init__``).
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.utils._param_validation import InvalidParameterError

from bertfeat import BertFeaturizer, FeatureStore, TextUnion, models
from bertfeat.params import positive_int
from bertfeat.probe import probe

from ..models.test_security import _model_with_shipped_code

TEXTS = ["good film", "awful plot", "great acting", "boring story"]


def _featurizer(tiny_model, **params) -> BertFeaturizer:
    return BertFeaturizer(model=tiny_model, cache=False, precision="fp32", **params)


@pytest.mark.parametrize("value", ["no", "false", "False", 1, 0, None, "yes"])
def test_trust_remote_code_takes_only_a_boolean(tmp_path, value):
    marker = tmp_path / "marker"
    model_dir = _model_with_shipped_code(tmp_path / "model", "evil-bert", marker)
    with pytest.raises(InvalidParameterError, match="'trust_remote_code' parameter"):
        _featurizer(str(model_dir), trust_remote_code=value).fit(TEXTS)
    # with scikit-learn's validation switched off, the loader still refuses it
    with sklearn.config_context(skip_parameter_validation=True):
        with pytest.raises(InvalidParameterError, match="trust_remote_code must be True or"):
            _featurizer(str(model_dir), trust_remote_code=value).fit(TEXTS)
    info = models.resolve_model(str(model_dir))
    with pytest.raises(InvalidParameterError, match="trust_remote_code must be True or"):
        models.load(info, depth=1, device="cpu", precision="fp32", trust_remote_code=value)
    assert not marker.exists()  # the shipped code never ran


@pytest.mark.parametrize("params, match", [
    (dict(show_progress=1), "'show_progress' parameter"),
    (dict(show_progress="yes"), "'show_progress' parameter"),
    (dict(pooling="sum"), "'pooling' parameter"),
    (dict(batch_size=True), "'batch_size' parameter"),
    (dict(max_chunks=0), "'max_chunks' parameter"),
    (dict(chunk_stride=-1), "'chunk_stride' parameter"),
    (dict(long_text="split"), "'long_text' parameter"),
    (dict(revision=3), "'revision' parameter"),
])
def test_constraints_are_sklearns(tiny_model, params, match):
    featurizer = _featurizer(tiny_model, **params)  # __init__ stores, never checks
    with pytest.raises(InvalidParameterError, match=match):
        featurizer.fit(TEXTS)
    with pytest.raises(InvalidParameterError, match=match):
        featurizer.fit_transform(TEXTS)


def test_empty_cache_path_is_refused(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="cache='' names no directory"):
        BertFeaturizer(model=tiny_model, cache="").fit(TEXTS)
    assert list(tmp_path.iterdir()) == []  # no store made in the current directory
    with pytest.raises(ValueError, match="cache='' names no directory"):
        FeatureStore.from_cache("")


@pytest.mark.parametrize("device, match", [
    ("cpu:7", "device='cpu:7': the cpu device takes no index; use 'cpu'"),
    ("cpu:0", "takes no index"),
    ("cuda:x", "CUDA"),
    ("tpu", "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
])
def test_device_is_checked(tiny_model, device, match):
    with pytest.raises(ValueError, match=match):
        _featurizer(tiny_model, device=device).fit(TEXTS)


def test_device_none_means_auto(tiny_model):
    assert _featurizer(tiny_model, device=None).fit(TEXTS).device_ == \
        models.resolve_device("auto")


def test_chunk_stride_without_chunking_warns(tiny_model):
    with pytest.warns(UserWarning, match="chunk_stride=4 has no effect with "
                                         "long_text='truncate'"):
        _featurizer(tiny_model, chunk_stride=4).fit(TEXTS)


@pytest.mark.parametrize("params, match", [
    (dict(bert_weight=-1), "'bert_weight' parameter of TextUnion"),
    (dict(scale_bert="yes"), "'scale_bert' parameter of TextUnion"),
    (dict(tfidf=object()), "'tfidf' parameter of TextUnion"),
])
def test_text_union_constraints(tiny_model, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        TextUnion(bert=_featurizer(tiny_model), **params).fit(TEXTS)


def test_text_union_validates_its_featurizer(tiny_model):
    with pytest.raises(InvalidParameterError, match="'pooling' parameter of BertFeaturizer"):
        TextUnion(bert=_featurizer(tiny_model, pooling="sum")).fit(TEXTS)


@pytest.mark.parametrize("params, match", [
    (dict(refine_top=True), "'refine_top' parameter of probe"),
    (dict(chunk_top=-1), "'chunk_top' parameter of probe"),
    (dict(union="yes"), "'union' parameter of probe"),
    (dict(cv=1), "'cv' parameter of probe"),
    (dict(featurizer_params={"batch_size": 0}), "'batch_size' parameter of probe"),
])
def test_probe_arguments(tiny_model, params, match, encode_spy):
    y = np.array([0, 1, 0, 1])
    with pytest.raises(InvalidParameterError, match=match):
        probe(TEXTS, y, model=tiny_model, cache=False, **params)
    assert sum(encode_spy) == 0  # refused before any encoding


def test_strict_interval_refuses_booleans():
    constraint = positive_int()
    assert constraint.is_satisfied_by(3) and constraint.is_satisfied_by(np.int64(3))
    assert not constraint.is_satisfied_by(True) and not constraint.is_satisfied_by(0)
    assert not constraint.is_satisfied_by(np.bool_(True))
