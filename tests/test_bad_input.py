"""Issue 6, items 1-2: a catalogue of bad, odd and hostile inputs, under both policies.

Every kind of input gets exactly one of three outcomes (the policy table lives in
``docs/bad_input_policy.md``):

* a correct result -- finite float32 rows, one per input row, equal to a hand computation
  (tokenizer + model called directly, mean of the last layer) for the text the row holds;
* a ``ValueError`` for a missing row (None, NaN, ``pd.NA`` ...) naming the first such row
  and the fix, unless ``on_bad_input="empty"``, which encodes it as ``""``;
* a ``TypeError``/``ValueError`` naming the first offending row (or the container) and
  what to do, raised by bertfeat's own validation (never from inside torch or the Rust
  tokenizer), whatever ``on_bad_input`` says.

A watchdog (``faulthandler``) ends the test process if any case hangs.
"""

from __future__ import annotations

import datetime
import faulthandler
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bertfeat import BertFeaturizer, encoder, models
from bertfeat.inputs import to_texts

#: seconds one test may take before the watchdog dumps every stack and exits: a hang
#: fails loudly instead of stalling CI
HANG_LIMIT = 180
MILLION = 1_000_000


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _polars():
    return pytest.importorskip("polars")


def _pyarrow_strings_with_na() -> pd.Series:
    pytest.importorskip("pyarrow")
    return pd.Series([G, None], dtype="string[pyarrow]")


def _sparse() -> Any:
    import scipy.sparse

    return scipy.sparse.csr_matrix(np.ones((2, 2)))


class _Shouty(str):
    """A ``str`` subclass whose ``__str__`` lies: its characters must win."""

    def __str__(self) -> str:
        return "something else entirely"


@dataclass
class Case:
    """One kind of input and the outcome it must get.

    Exactly one of ``texts``, ``error`` and ``missing`` is set:

    texts
        The input is valid and means these plain strings (hand-computed reference).
    error
        ``(exception type, regex)`` under both ``on_bad_input`` policies.
    missing
        ``(regex, texts)``: ``ValueError`` matching regex under ``"raise"``; under
        ``"empty"`` the input means ``texts``.
    """

    make: Callable[[], Any]
    texts: list[str] | None = None
    error: tuple[type[Exception], str] | None = None
    missing: tuple[str, list[str]] | None = None
    warns: tuple[type[Warning], str] | None = None
    check: Callable[[np.ndarray, Any], None] | None = None
    tags: set[str] = field(default_factory=set)


G = "good film"
B = "bad plot"


def _no_pad_in_ids(out: np.ndarray, ctx: Any) -> None:
    ids = ctx.tokenizer("good [PAD] film")["input_ids"]
    assert ctx.tokenizer.pad_token_id not in ids  # "[PAD]" in a text is characters


def _special_tokens_are_text(out: np.ndarray, ctx: Any) -> None:
    text = "[CLS] [SEP] [MASK]"
    plain = ctx.tokenizer(text)["input_ids"]
    as_control = ctx.tokenizer(text, split_special_tokens=False)["input_ids"]
    special = {ctx.tokenizer.cls_token_id, ctx.tokenizer.sep_token_id,
               ctx.tokenizer.mask_token_id}
    # only the two added by the model's template are control tokens
    assert [i for i in plain if i in special] == [ctx.tokenizer.cls_token_id,
                                                 ctx.tokenizer.sep_token_id]
    assert plain != as_control
    assert not np.allclose(out[0], ctx.hand_ids([as_control])[0], atol=1e-4)
    # an uncased model: the lower-case spelling is the same text
    np.testing.assert_allclose(out[0], ctx.fitted.transform(["[cls] [sep] [mask]"])[0],
                               rtol=0, atol=1e-6)


def _all_rows_equal_and_encoded_once(out: np.ndarray, ctx: Any) -> None:
    assert (out[:-1] == out[0]).all()
    assert not np.allclose(out[0], out[-1])
    assert ctx.encoded == [2]  # 10,001 rows, 2 distinct texts, one encoder call


def _like_empty(out: np.ndarray, ctx: Any) -> None:
    np.testing.assert_allclose(out, np.repeat(ctx.empty_vector, len(out), axis=0),
                               rtol=0, atol=1e-6)


def _truncated_to_the_same_prefix(out: np.ndarray, ctx: Any) -> None:
    # truncation keeps the first max_length tokens: a far shorter text with the same
    # first max_length tokens gives the same vector
    with pytest.warns(UserWarning, match="truncated"):
        shorter = ctx.fitted.transform([(G + " ") * ctx.max_length])
    np.testing.assert_allclose(out[0], shorter[0], rtol=0, atol=1e-5)


CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- missing rows
    "None-row": Case(lambda: [G, None, B, None],
                     missing=(r"^Row 1 is missing \(None\)", [G, "", B, ""])),
    "float-nan-row": Case(lambda: [G, float("nan"), B],
                          missing=(r"^Row 1 is missing \(nan\)", [G, "", B])),
    "np-float32-nan-row": Case(lambda: [G, np.float32("nan")],
                               missing=(r"^Row 1 is missing", [G, ""])),
    "pd.NA-row": Case(lambda: [G, pd.NA, B], missing=(r"^Row 1 is missing \(<NA>\)",
                                                      [G, "", B])),
    "pd.NaT-row": Case(lambda: [G, pd.NaT], missing=(r"^Row 1 is missing \(NaT\)", [G, ""])),
    "series-nan-labelled": Case(
        lambda: pd.Series([G, B, np.nan], index=["x", "y", "z"]),
        missing=(r"^Row 2 \(index label 'z'\) is missing", [G, B, ""])),
    "string-dtype-NA": Case(lambda: pd.Series([G, None, B], dtype="string"),
                            missing=(r"^Row 1 is missing", [G, "", B])),
    "pyarrow-string-NA": Case(_pyarrow_strings_with_na,
                              missing=(r"^Row 1 is missing", [G, ""])),
    "categorical-nan": Case(lambda: pd.Series(pd.Categorical([G, None, G])),
                            missing=(r"^Row 1 is missing", [G, "", G])),
    "polars-null": Case(lambda: _polars().Series([G, None, B]),
                        missing=(r"^Row 1 is missing", [G, "", B])),
    "numpy-float-nan-array": Case(lambda: np.array([np.nan, np.nan]),
                                  missing=(r"^Row 0 is missing", ["", ""])),
    # ----------------------------------------------------------- rows of a wrong type
    "int-row": Case(lambda: [G, 3, 4], error=(TypeError, r"^Row 1 is of type int \(3\)")),
    "float-row": Case(lambda: [G, 2.5], error=(TypeError, r"^Row 1 is of type float")),
    "inf-row": Case(lambda: [G, float("inf")], error=(TypeError, r"^Row 1 is of type float")),
    "bool-row": Case(lambda: [G, True], error=(TypeError, r"^Row 1 is of type bool")),
    "bytes-row": Case(lambda: [G, b"good", b"x"],
                      error=(TypeError, r"^Row 1 is bytes, not str\. Decode it first")),
    "bytearray-row": Case(lambda: [G, bytearray(b"good")],
                          error=(TypeError, r"^Row 1 is bytearray, not str\. Decode")),
    "memoryview-row": Case(lambda: [G, memoryview(b"good")],
                           error=(TypeError, r"^Row 1 is memoryview, not str")),
    "numpy-bytes-array": Case(lambda: np.array([b"good", b"bad"]),
                              error=(TypeError, r"^Row 0 is bytes, not str\. Decode")),
    "nested-list-row": Case(lambda: [G, [G, B], [B]],
                            error=(TypeError, r"^Row 1 is of type list .*not str")),
    "list-of-lists": Case(lambda: [[G], [B]], error=(TypeError, r"^Row 0 is of type list")),
    "dict-row": Case(lambda: [{"text": G}], error=(TypeError, r"^Row 0 is of type dict")),
    "tuple-row": Case(lambda: [G, (G, B)], error=(TypeError, r"^Row 1 is of type tuple")),
    "datetime-row": Case(lambda: [G, datetime.date(2024, 1, 1)],
                         error=(TypeError, r"^Row 1 is of type date")),
    "numpy-int-array": Case(lambda: np.arange(3), error=(TypeError, r"^Row 0 is of type int")),
    "mixed-object-series": Case(
        lambda: pd.Series([G, B, 7], index=["a", "b", "c"]),
        error=(TypeError, r"^Row 2 \(index label 'c'\) is of type int")),
    "bad-row-500": Case(lambda: [G] * 500 + [1.5] + [None],
                        error=(TypeError, r"^Row 500 is of type float")),
    # ---------------------------------------------------------- wrong containers/shapes
    "single-str": Case(lambda: G, error=(TypeError, r"single str\. Wrap it in a list")),
    "single-bytes": Case(lambda: b"good", error=(TypeError, r"single bytes")),
    "dict": Case(lambda: {"a": G}, error=(TypeError, r"got a dict\. Pass its values")),
    "set": Case(lambda: {G, B}, error=(TypeError, r"got a set, which has no order")),
    "frozenset": Case(lambda: frozenset([G]), error=(TypeError, r"frozenset, which has no")),
    "None-container": Case(lambda: None, error=(TypeError, r"got NoneType")),
    "int-container": Case(lambda: 5, error=(TypeError, r"got int")),
    "2d-array": Case(lambda: np.full((3, 2), G, dtype=object),
                     error=(ValueError, r"array of shape \(3, 2\).*one text per row")),
    "3d-array": Case(lambda: np.full((2, 1, 2), G), error=(ValueError, r"shape \(2, 1, 2\)")),
    "0d-array": Case(lambda: np.array(G), error=(ValueError, r"shape \(\)")),
    "multi-column-dataframe": Case(
        lambda: pd.DataFrame({"text": [G, B], "title": [B, G]}),
        error=(ValueError, r"one text column.*2 columns.*ColumnTransformer")),
    "zero-column-dataframe": Case(lambda: pd.DataFrame(index=range(3)),
                                  error=(ValueError, r"one text column.*0 columns")),
    "polars-multi-column": Case(lambda: _polars().DataFrame({"a": [G], "b": [B]}),
                                error=(ValueError, r"one text column.*2 columns")),
    "sparse-matrix": Case(_sparse, error=(TypeError, r"sparse input is not supported")),
    # ------------------------------------------------------------- valid, empty input
    "empty-list": Case(lambda: [], texts=[]),
    "empty-tuple": Case(lambda: (), texts=[]),
    "empty-series": Case(lambda: pd.Series([], dtype=object), texts=[]),
    "empty-1col-dataframe": Case(lambda: pd.DataFrame({"text": []}), texts=[]),
    "empty-array": Case(lambda: np.array([], dtype=str), texts=[]),
    "empty-generator": Case(lambda: (t for t in []), texts=[]),
    # ------------------------------------------------------------- valid, odd texts
    "empty-string": Case(lambda: ["", G, ""], texts=["", G, ""]),
    "whitespace-only": Case(lambda: ["   ", "\t\n\r ", "\u00a0\u2003\u3000"],
                            texts=["   ", "\t\n\r ", "\u00a0\u2003\u3000"], check=_like_empty),
    "zero-width-only": Case(lambda: ["\u200b\ufeff\u200d"], texts=["\u200b\ufeff\u200d"]),
    "million-chars-words": Case(lambda: [(G + " ") * (MILLION // 10)],
                                texts=[(G + " ") * (MILLION // 10)],
                                warns=(UserWarning, r"1 of 1 texts are longer than max_length"),
                                check=_truncated_to_the_same_prefix, tags={"big"}),
    "million-chars-one-word": Case(lambda: ["a" * MILLION], texts=["a" * MILLION],
                                   tags={"big"}),
    "million-nul": Case(lambda: ["\x00" * MILLION], texts=["\x00" * MILLION],
                        check=_like_empty, tags={"big"}),
    "nul-and-controls": Case(lambda: ["good\x00film\x07\x1b[31m\x7f\x08", "\x00"],
                             texts=["good\x00film\x07\x1b[31m\x7f\x08", "\x00"]),
    "c1-controls-and-bidi-marks": Case(lambda: ["\x85good\u200efilm\u202e\u2066x"],
                                       texts=["\x85good\u200efilm\u202e\u2066x"]),
    "lone-high-surrogate": Case(lambda: [G, "good \ud800 film"],
                                texts=[G, "good \ufffd film"],
                                warns=(UserWarning, r"1 text\(s\) hold lone UTF-16 "
                                       r"surrogates \(first: Row 1\).*U\+FFFD")),
    "lone-surrogates-everywhere": Case(
        lambda: pd.Series(["\udfff", "a\udc80\udc81b", G], index=[5, 6, 7], dtype=object),
        texts=["\ufffd", "a\ufffd\ufffdb", G],
        warns=(UserWarning, r"2 text\(s\).*first: Row 0 \(index label 5\)")),
    "rtl-arabic-hebrew": Case(lambda: ["مرحبا بالعالم", "שלום עולם", "good مرحبا film"],
                              texts=["مرحبا بالعالم", "שלום עולם", "good مرحبا film"]),
    "cjk": Case(lambda: ["日本語のテキスト", "中文文本", "한국어"],
                texts=["日本語のテキスト", "中文文本", "한국어"]),
    "emoji-zwj-flags-skin-tone": Case(
        lambda: ["👨‍👩‍👧‍👦 family", "🇫🇷🏳️‍🌈", "👍🏽 good"],
        texts=["👨‍👩‍👧‍👦 family", "🇫🇷🏳️‍🌈", "👍🏽 good"]),
    "combining-characters": Case(lambda: ["e\u0301", "\u00e9", "g\u0337\u0322o\u0338o\u0334d"],
                                 texts=["e\u0301", "\u00e9", "g\u0337\u0322o\u0338o\u0334d"]),
    "noncharacters-private-use": Case(lambda: ["\uffff\U0010ffff\ue000 good"],
                                      texts=["\uffff\U0010ffff\ue000 good"]),
    "html-markup": Case(lambda: ["<p>good</p>\n\t<b>film</b>&amp;"],
                        texts=["<p>good</p>\n\t<b>film</b>&amp;"]),
    "special-token-text": Case(lambda: ["[CLS] [SEP] [MASK]"], texts=["[CLS] [SEP] [MASK]"],
                               check=_special_tokens_are_text),
    "pad-token-in-text": Case(lambda: ["good [PAD] film"], texts=["good [PAD] film"],
                              check=_no_pad_in_ids),
    "many-duplicates": Case(lambda: [G] * 10_000 + [B], texts=[G] * 10_000 + [B],
                            check=_all_rows_equal_and_encoded_once),
    "str-subclass": Case(lambda: [_Shouty(G), np.str_(B)], texts=[G, B]),
    # ------------------------------------------------------------- valid containers
    "generator": Case(lambda: (t for t in [G, B]), texts=[G, B]),
    "map-iterator": Case(lambda: map(str.strip, [" good film ", B]), texts=[G, B]),
    "dict-values": Case(lambda: {"a": G, "b": B}.values(), texts=[G, B]),
    "dict-keys": Case(lambda: {G: 1, B: 2}.keys(), texts=[G, B]),
    "pandas-index": Case(lambda: pd.Index([G, B]), texts=[G, B]),
    "categorical-series": Case(lambda: pd.Series(pd.Categorical([G, B, G])), texts=[G, B, G]),
    "categorical-array": Case(lambda: pd.Categorical([B, G]), texts=[B, G]),
    "string-dtype": Case(lambda: pd.Series([G, B], dtype="string"), texts=[G, B]),
    "numpy-unicode": Case(lambda: np.array([G, B]), texts=[G, B]),
    "numpy-object-n1": Case(lambda: np.array([[G], [B]], dtype=object), texts=[G, B]),
    "polars-series": Case(lambda: _polars().Series("text", [G, B]), texts=[G, B]),
    "polars-1col-dataframe": Case(lambda: _polars().DataFrame({"text": [G, B]}),
                                  texts=[G, B]),
}


class Context:
    """The fitted featurizer and a hand computation to compare against."""

    def __init__(self, model_dir: str) -> None:
        import torch

        self.fitted = BertFeaturizer(model=model_dir, cache=False, precision="fp32").fit([G])
        info = models.resolve_model(model_dir)
        self.tokenizer, self.model = models.load(info, depth=info.n_layers, device="cpu",
                                                 precision="fp32")
        self.max_length = self.fitted.max_length_
        self.torch = torch
        self.encoded: list[int] = []
        self.empty_vector = self.hand([""])

    def hand_ids(self, id_lists: list[list[int]]) -> np.ndarray:
        torch = self.torch
        rows = []
        with torch.inference_mode():
            for ids in id_lists:
                hidden = self.model(input_ids=torch.tensor([ids]),
                                    output_hidden_states=True).hidden_states
                rows.append(hidden[-1][0].mean(dim=0).numpy())
        return np.asarray(rows, dtype=np.float32).reshape(len(id_lists), -1)

    def hand(self, texts: list[str]) -> np.ndarray:
        """Mean of the last layer for each text, one text per forward pass."""
        unique = list(dict.fromkeys(texts))
        ids = [self.tokenizer(t, truncation=True, max_length=self.max_length)["input_ids"]
               for t in unique]
        vectors = dict(zip(unique, self.hand_ids(ids)))
        width = self.fitted.n_features_out_
        return np.asarray([vectors[t] for t in texts], dtype=np.float32).reshape(-1, width)


@pytest.fixture(scope="module")
def ctx(tiny_model) -> Context:
    return Context(tiny_model)


@pytest.fixture
def spy(ctx, monkeypatch):
    ctx.encoded = []
    real = encoder.encode

    def counting(tokenizer, model, texts, **kwargs):
        ctx.encoded.append(len(texts))
        return real(tokenizer, model, texts, **kwargs)

    monkeypatch.setattr(encoder, "encode", counting)
    return ctx


def _raised_by_bertfeat(excinfo: pytest.ExceptionInfo) -> None:
    """The error comes from bertfeat's input validation, not from deep in a library."""
    last = str(excinfo.traceback[-1].path)
    assert last.endswith(("bertfeat/io/inputs.py", "bertfeat\\io\\inputs.py")), last


def _expected_texts(case: Case, policy: str) -> list[str] | None:
    if case.texts is not None:
        return case.texts
    if case.missing is not None and policy == "empty":
        return case.missing[1]
    return None


@pytest.mark.parametrize("policy", ["raise", "empty"])
@pytest.mark.parametrize("kind", list(CASES))
def test_input_kind(spy, kind, policy):
    ctx = spy
    case = CASES[kind]
    featurizer = ctx.fitted.set_params(on_bad_input=policy)
    expected = _expected_texts(case, policy)
    started = time.monotonic()
    if expected is None:  # an error, naming the row and the fix, from bertfeat itself
        kind_, pattern = case.error or (ValueError, case.missing[0] + r".*on_bad_input='empty'")
        with pytest.raises(kind_, match=pattern) as excinfo:
            featurizer.transform(case.make())
        _raised_by_bertfeat(excinfo)
        assert ctx.encoded == []  # refused before any encoding
        with pytest.raises(kind_, match=pattern):  # fit validates the same way
            BertFeaturizer(model=featurizer.model, cache=False,
                           on_bad_input=policy).fit(case.make())
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = featurizer.transform(case.make())
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"{kind} took {elapsed:.0f} s"
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == (len(expected), featurizer.n_features_out_)
    assert np.isfinite(out).all()
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    if case.warns is not None:
        category, pattern = case.warns
        assert any(issubclass(w.category, category) and re.search(pattern, str(w.message))
                   for w in caught), messages
    else:
        assert not caught, messages  # nothing to warn about: no noise either
    if len(expected):
        np.testing.assert_allclose(out, ctx.hand(expected), rtol=0, atol=1e-5)
    if case.check is not None:
        case.check(out, ctx)


def test_catalogue_is_large_enough():
    valid = [k for k, c in CASES.items() if c.texts is not None]
    refused = [k for k, c in CASES.items() if c.error is not None]
    missing = [k for k, c in CASES.items() if c.missing is not None]
    assert len(CASES) >= 30
    assert len(valid) >= 10 and len(refused) >= 10 and len(missing) >= 5


#: the test modules whose cases the policy counts (tests/catalogue.py)
CATALOGUE_MODULES = ("io.test_readers_faults", "deploy.test_export_faults",
                     "estimators.test_finetune_faults", "store.test_store_probe_faults",
                     "cli.test_entry_points_faults")


def test_catalogue_totals_match_the_policy():
    """The totals in docs/bad_input_policy.md: hand-counted rows + one registered test per
    row added since; every registered case is a row of the policy, a fault as a fault."""
    import importlib
    from pathlib import Path

    from .catalogue import HAND_COUNTED

    doc = (Path(__file__).resolve().parents[1] / "docs" / "bad_input_policy.md").read_text(
        encoding="utf-8")
    rows = {}
    for line in doc.splitlines():
        cells = line.split(" | ")
        if line.startswith("| ") and len(cells) >= 2:
            rows[cells[0][2:]] = cells[1]
    counts = dict(HAND_COUNTED)
    for name in CATALOGUE_MODULES:
        try:
            cases = importlib.import_module(f"tests.{name}").CASES
        except pytest.skip.Exception:  # an optional dependency (onnxruntime) is missing
            pytest.skip(f"{name} needs an optional dependency")
        for key, (kind, _) in cases.cases.items():
            title = key.split(": ", 1)[1]
            assert title in rows, f"{key!r} is not a row of the policy"
            assert rows[title].startswith("**fault**") == (kind == "fault"), key
            counts[kind] += 1
    stated_inputs = int(re.search(r"\*\*input kinds: (\d+)\*\*", doc).group(1))
    stated_faults = int(re.search(r"\*\*injected faults: (\d+)\*\*", doc).group(1))
    assert (stated_inputs, stated_faults) == (counts["input"], counts["fault"])
    assert counts["input"] >= 170 and counts["fault"] >= 80  # issue 27


def test_missing_rows_under_empty_policy_equal_the_empty_string(ctx):
    featurizer = BertFeaturizer(model=ctx.fitted.model, cache=False, precision="fp32",
                                on_bad_input="empty").fit([G])
    out = featurizer.transform([G, None, float("nan"), pd.NA, pd.NaT, ""])
    for row in range(1, 5):
        np.testing.assert_array_equal(out[row], out[5])
    np.testing.assert_allclose(out[5], ctx.empty_vector[0], rtol=0, atol=1e-5)


def test_empty_input_in_fit_and_pandas_output(ctx):
    featurizer = BertFeaturizer(model=ctx.fitted.model, cache=False).fit([])
    assert featurizer.transform([]).shape == (0, featurizer.n_features_out_)
    featurizer.set_output(transform="pandas")
    frame = featurizer.transform(pd.Series([], dtype=object))
    assert isinstance(frame, pd.DataFrame)
    assert frame.shape == (0, featurizer.n_features_out_)
    assert list(frame.columns) == featurizer.get_feature_names_out().tolist()


def test_odd_texts_through_the_store_read_back_identically(tiny_model, tmp_path,
                                                            monkeypatch):
    """Surrogates, NUL, huge and special-token texts: stored, then read back the same."""
    texts = ["good \ud800 film", "\x00", "[CLS] [SEP] [MASK]", "👨‍👩‍👧", "e\u0301",
             "", "   ", "日本語", (G + " ") * 5000, "good [PAD] film"]
    store = str(tmp_path / "store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cold = BertFeaturizer(model=tiny_model, cache=store, precision="fp32").fit(
            texts).transform(texts)
        reference = BertFeaturizer(model=tiny_model, cache=False, precision="fp32").fit(
            texts).transform(texts)
    np.testing.assert_array_equal(cold, reference)
    calls = []
    real = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = BertFeaturizer(model=tiny_model, cache=store, precision="fp32").fit(
            texts).transform(texts)
    assert calls == []  # every odd text was a store hit
    np.testing.assert_array_equal(warm, reference)


def test_surrogate_replacement_keeps_row_count_and_other_rows():
    with pytest.warns(UserWarning, match="U\\+FFFD"):
        texts, _ = to_texts(["ok", "\ud83d", "\ud83d\ude00", "x"])
    # each surrogate becomes U+FFFD; Python never joins two surrogates into one character
    assert texts == ["ok", "\ufffd", "\ufffd\ufffd", "x"]
    assert all(t.encode("utf-8") for t in texts)  # every text is valid Unicode now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert to_texts(["😀 good"])[0] == ["😀 good"]  # proper characters: no warning


def test_fit_transform_reads_and_warns_once(tiny_model):
    texts = ["good \ud800 film", "ok"]
    featurizer = BertFeaturizer(model=tiny_model, cache=False, precision="fp32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        once = featurizer.fit_transform(texts)
    surrogates = [w for w in caught if "surrogates" in str(w.message)]
    assert len(surrogates) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twice = BertFeaturizer(model=tiny_model, cache=False, precision="fp32").fit(
            texts).transform(texts)
    np.testing.assert_array_equal(once, twice)
    with pytest.raises(TypeError, match="unexpected keyword"):
        featurizer.fit_transform(texts, sample_weight=[1, 1])
