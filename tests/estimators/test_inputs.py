"""Issue 2, behaviour 2: what ``BertFeaturizer`` accepts as texts and how it refuses the rest.

Accepted: list, tuple, numpy str/object arrays (1-D and (n, 1)), pandas Series (index kept in
pandas output), 1-column DataFrame, generators. Refused with an error naming the first bad
row: None, NaN, ``pd.NA`` (``ValueError``), numbers and bytes (``TypeError``). Empty strings
are valid: they encode as the special tokens alone.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from bertfeat import BertFeaturizer, models
from bertfeat.inputs import dedup, to_texts

from ..equality import assert_within_bound

TEXTS = ["the film was good", "awful plot", "i love this movie", "what a boring story"]


@pytest.fixture(scope="module")
def fitted(tiny_model):
    return BertFeaturizer(model=tiny_model, cache=False, precision="fp32").fit(TEXTS)


@pytest.fixture(scope="module")
def reference(fitted):
    return fitted.transform(TEXTS)


# ------------------------------------------------------------------------ accepted containers
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda t: list(t), id="list"),
        pytest.param(lambda t: tuple(t), id="tuple"),
        pytest.param(lambda t: np.array(t), id="numpy-str"),
        pytest.param(lambda t: np.array(t, dtype=object), id="numpy-object"),
        pytest.param(lambda t: np.array(t).reshape(-1, 1), id="numpy-str-n1"),
        pytest.param(lambda t: np.array(t, dtype=object).reshape(-1, 1), id="numpy-object-n1"),
        pytest.param(lambda t: pd.Series(t), id="series"),
        pytest.param(lambda t: pd.Series(t, dtype="string"), id="series-string-dtype"),
        pytest.param(lambda t: pd.Series(t, dtype=object), id="series-object"),
        pytest.param(lambda t: pd.DataFrame({"text": t}), id="dataframe-1col"),
        pytest.param(lambda t: (x for x in t), id="generator"),
        pytest.param(lambda t: iter(t), id="iterator"),
    ],
)
def test_accepted_containers_give_the_same_features(fitted, reference, make):
    out = fitted.transform(make(TEXTS))
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    assert_within_bound(out, reference)


def test_readonly_numpy_input(fitted, reference):
    array = np.array(TEXTS, dtype=object)
    array.setflags(write=False)
    assert_within_bound(fitted.transform(array), reference)


def test_fit_transform_reads_a_generator_once(tiny_model, reference):
    # fit must not exhaust a one-shot iterable before transform sees it
    featurizer = BertFeaturizer(model=tiny_model, cache=False, precision="fp32")
    out = featurizer.fit_transform(t for t in TEXTS)
    assert out.shape == reference.shape
    assert_within_bound(out, reference)


def test_pipeline_fit_on_a_generator(tiny_model):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(BertFeaturizer(model=tiny_model, cache=False),
                         LogisticRegression())
    pipe.fit((t for t in TEXTS), [1, 0, 1, 0])
    assert pipe.predict(TEXTS).shape == (4,)


def test_series_index_kept_in_pandas_output(fitted, reference):
    series = pd.Series(TEXTS, index=[40, 10, 30, 20], name="review")
    featurizer = BertFeaturizer(model=fitted.model, cache=False, precision="fp32")
    featurizer.set_output(transform="pandas").fit(series)
    out = featurizer.transform(series)
    assert isinstance(out, pd.DataFrame)
    assert out.index.tolist() == [40, 10, 30, 20]
    assert out.columns.tolist() == featurizer.get_feature_names_out().tolist()
    assert_within_bound(out.to_numpy(), reference)
    # a 1-column DataFrame keeps its index too
    frame = series.to_frame()
    assert featurizer.transform(frame).index.tolist() == [40, 10, 30, 20]


def test_to_texts_returns_python_strings_and_index():
    texts, index = to_texts(np.array(["a", "b"]))
    assert texts == ["a", "b"]
    assert all(type(t) is str for t in texts)
    assert index is None
    texts, index = to_texts(pd.Series(["a", "b"], index=["x", "y"]))
    assert list(index) == ["x", "y"]


def test_dedup_keeps_first_seen_order_and_inverse():
    unique, inverse = dedup(["b", "a", "b", "c", "a"])
    assert unique == ["b", "a", "c"]
    assert [unique[i] for i in inverse] == ["b", "a", "b", "c", "a"]


# --------------------------------------------------------------------------------- bad rows
MISSING = [
    pytest.param(None, id="None"),
    pytest.param(float("nan"), id="float-nan"),
    pytest.param(np.float32("nan"), id="np-float32-nan"),
    pytest.param(pd.NA, id="pd.NA"),
]


@pytest.mark.parametrize("value", MISSING)
@pytest.mark.parametrize("position", [0, 2])
def test_missing_rows_raise_value_error_naming_the_row(fitted, value, position):
    texts = list(TEXTS)
    texts[position] = value
    texts.append(value)  # a later bad row must not be the one named
    with pytest.raises(ValueError, match=rf"^Row {position} is missing.*on_bad_input='empty'"):
        fitted.transform(texts)
    with pytest.raises(ValueError, match=rf"^Row {position} is missing"):
        BertFeaturizer(model=fitted.model, cache=False).fit(texts)


def test_missing_row_error_names_the_pandas_label(fitted):
    series = pd.Series(["good", "bad", None], index=[7, 8, 9])
    with pytest.raises(ValueError, match=r"^Row 2 \(index label 9\) is missing"):
        fitted.transform(series)
    series = pd.Series(["good", None], index=["a", "b"])
    with pytest.raises(ValueError, match=r"^Row 1 \(index label 'b'\) is missing"):
        fitted.transform(series)


def test_pandas_string_column_nan_after_astype_str(fitted):
    """pandas 3 keeps NaN as a float NaN through ``astype(str)``; older pandas wrote 'nan'."""
    column = pd.Series(["good", np.nan, "bad"], dtype=object).astype(str)
    second = column.tolist()[1]
    if int(pd.__version__.split(".")[0]) >= 3:
        # the real behaviour of pandas >= 3: the missing value survives astype(str) ...
        assert isinstance(second, float) and np.isnan(second)
        # ... so it is refused, naming the row, instead of being encoded as the text 'nan'
        with pytest.raises(ValueError, match=r"^Row 1 is missing \(nan\)"):
            fitted.transform(column)
        with pytest.raises(ValueError, match=r"^Row 1 is missing"):
            fitted.transform(column.to_frame("text"))
    else:  # pragma: no cover - pandas < 3
        assert second == "nan"
        assert fitted.transform(column).shape == (3, fitted.n_features_out_)


def test_pandas_string_dtype_na(fitted):
    column = pd.Series(["good", None, "bad"], dtype="string")
    with pytest.raises(ValueError, match=r"^Row 1 is missing"):
        fitted.transform(column)


@pytest.mark.parametrize(
    "value, kind",
    [
        (3, "int"),
        (np.int64(3), "int64"),
        (2.5, "float"),
        (True, "bool"),
        (["a"], "list"),
    ],
)
def test_non_string_rows_raise_type_error_naming_the_row(fitted, value, kind):
    with pytest.raises(TypeError, match=rf"^Row 1 is of type {kind} .*not str"):
        fitted.transform(["good", value, 7])


def test_int_input_raises_type_error(fitted):
    with pytest.raises(TypeError, match=r"^Row 0 is of type int"):
        fitted.transform([1, 2, 3])
    with pytest.raises(TypeError, match=r"^Row 0 is of type int"):
        fitted.transform(np.arange(3))


@pytest.mark.parametrize("value", [b"bytes", bytearray(b"x"), np.bytes_(b"y")])
def test_bytes_rows_raise_type_error_with_decode_hint(fitted, value):
    with pytest.raises(TypeError, match=r"^Row 2 is \w+, not str\. Decode it first"):
        fitted.transform(["good", "bad", value])


def test_bytes_numpy_array(fitted):
    with pytest.raises(TypeError, match=r"^Row 0 is bytes"):
        fitted.transform(np.array([b"good", b"bad"]))


def test_on_bad_input_empty_encodes_missing_rows_as_empty_string(tiny_model):
    featurizer = BertFeaturizer(model=tiny_model, cache=False, precision="fp32",
                                on_bad_input="empty").fit(["x"])
    out = featurizer.transform(["good", None, float("nan"), pd.NA, ""])
    np.testing.assert_array_equal(out[1], out[4])
    np.testing.assert_array_equal(out[2], out[4])
    np.testing.assert_array_equal(out[3], out[4])
    assert not np.allclose(out[0], out[4])
    # wrong types are still refused
    with pytest.raises(TypeError, match="^Row 1"):
        featurizer.transform(["good", 5])


def test_on_bad_input_is_validated_in_fit(tiny_model):
    featurizer = BertFeaturizer(model=tiny_model, on_bad_input="skip")  # __init__ accepts
    with pytest.raises(ValueError, match="'on_bad_input' parameter of BertFeaturizer must be"):
        featurizer.fit(TEXTS)


# ------------------------------------------------------------------------------ empty texts
def test_empty_strings_encode_as_special_tokens_only(fitted):
    out = fitted.transform(["", "good film", "", "   ", ""])
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], out[4])
    # whitespace tokenises to nothing, like the empty string
    np.testing.assert_array_equal(out[0], out[3])
    assert not np.allclose(out[0], out[1])

    # the documented result: the vector of the special tokens alone ([CLS] [SEP])
    import torch

    info = models.resolve_model(fitted.model)
    tokenizer, model = models.load(info, depth=info.n_layers, device="cpu", precision="fp32")
    ids = tokenizer("")["input_ids"]
    assert ids == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    expected = hidden[-1][0].mean(dim=0).numpy()
    assert_within_bound(out[0], expected)


def test_empty_strings_in_batches_with_long_texts(fitted):
    alone = fitted.transform([""])
    mixed = fitted.transform(["", "a very very long and boring story about money " * 3])
    assert_within_bound(mixed[0], alone[0])


def test_empty_input_gives_zero_rows(fitted):
    out = fitted.transform([])
    assert out.shape == (0, fitted.n_features_out_)
    assert out.dtype == np.float32


# -------------------------------------------------------------------- wrong shapes and kinds
def test_multi_column_dataframe_raises_clear_error(fitted):
    frame = pd.DataFrame({"text": TEXTS, "other": TEXTS})
    with pytest.raises(ValueError, match=r"one text column.*2 columns.*ColumnTransformer"):
        fitted.transform(frame)
    with pytest.raises(ValueError, match="one text column"):
        BertFeaturizer(model=fitted.model).fit(frame)


@pytest.mark.parametrize("shape", [(2, 2), (4, 3), (1, 2, 2)])
def test_multi_column_array_raises_clear_error(fitted, shape):
    array = np.full(shape, "text", dtype=object)
    with pytest.raises(ValueError, match=re.escape(f"shape {shape}") + ".*one text per row"):
        fitted.transform(array)


def test_list_of_lists_names_the_row(fitted):
    with pytest.raises(TypeError, match=r"^Row 0 is of type list"):
        fitted.transform([["good", "bad"], ["film", "plot"]])


@pytest.mark.parametrize("matrix", [sp.csr_matrix(np.ones((3, 2))), sp.csr_array(np.ones((3, 1)))])
def test_sparse_input_is_refused(fitted, matrix):
    with pytest.raises(TypeError, match="sparse input is not supported"):
        fitted.transform(matrix)


@pytest.mark.parametrize(
    "value, match",
    [
        ("one text", r"single str\. Wrap it in a list"),
        (b"one text", r"single bytes"),
        ({"a": "text"}, r"got a dict"),
        (5, r"got int"),
        (None, r"got NoneType"),
    ],
)
def test_not_a_sequence_of_texts(fitted, value, match):
    with pytest.raises(TypeError, match=match):
        fitted.transform(value)
