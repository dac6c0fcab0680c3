"""Issue 17: a fitted pipeline exported to ONNX runs without torch and transformers.

Each export of the tiny random model takes a few seconds (tracing + a check run), so one
export serves several checks: the features against the torch featurizer (fp32, cosine >=
0.9999), the head's predictions against the fitted pipeline, and the folder's contents.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bertfeat import BertFeaturizer, TextUnion, runtime
from bertfeat.cli import main
from bertfeat.export import ExportError, export_pipeline

from ..conftest import WORDS, needs_default_model

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

_rng = np.random.default_rng(0)
TEXTS = [" ".join(_rng.choice(WORDS, size=int(_rng.integers(1, 30)))) for _ in range(40)]
LABELS = np.array([int("good" in t or "great" in t or "love" in t) for t in TEXTS])
NEW = ["the film was good", "", "awful awful plot", "i love this movie " * 20,
       "what a [SEP] question", "not bad"] + TEXTS[:6]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _feat(model, **params) -> BertFeaturizer:
    return BertFeaturizer(model=model, precision="fp32", device="cpu", cache=False, **params)


@pytest.mark.parametrize("params, head", [
    (dict(layers=-1, pooling="mean"), [LogisticRegression(max_iter=500)]),
    (dict(layers=[1, 3], pooling="mean_max", layer_combine="concat"),
     [StandardScaler(), SVC(kernel="rbf")]),
    (dict(layers=[0, 2], pooling="first_last", layer_combine="mean", normalize=True),
     [MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0)]),
    (dict(layers="all", pooling="max", layer_combine="sum"), [StandardScaler()]),
    (dict(layers=-1, pooling="cls"), []),
    (dict(layers=-1, pooling="pooler"), [LogisticRegression(max_iter=500)]),
    (dict(layers=-1), []),  # the defaults: pooling/normalize "auto", resolved at fit
], ids=["mean-logreg", "mean_max-concat-svc", "first_last-mean-norm-mlp", "max-sum-scaler",
        "cls-alone", "pooler-logreg", "auto-alone"])
def test_export_matches_the_torch_pipeline(tiny_model, tmp_path, params, head):
    pipe = make_pipeline(_feat(tiny_model, **params), *head).fit(TEXTS, LABELS)
    report = export_pipeline(pipe if head else pipe[0], tmp_path / "out", verbose=False)
    assert report.cosine_min >= 0.9999
    loaded = runtime.load(tmp_path / "out")
    got, want = loaded.encode(NEW), pipe[0].transform(NEW)
    assert got.shape == want.shape
    assert _cos(got, want).min() >= 0.9999
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "tokenizer.json" in files and "encoder.onnx" in files
    assert not any((tmp_path / "out" / f).read_bytes()[:1] == b"\x80" for f in files)  # pickle
    if not head:
        assert files == ["encoder.onnx", "manifest.json", "tokenizer.json"]
        with pytest.raises(AttributeError, match="no scikit-learn head"):
            loaded.predict(NEW)
        return
    last = pipe[-1]
    if hasattr(last, "classes_"):
        np.testing.assert_array_equal(loaded.predict(NEW), pipe.predict(NEW))
        np.testing.assert_array_equal(loaded.classes_, pipe.classes_)
        if isinstance(last, SVC):
            with pytest.raises(AttributeError, match="predict_proba"):
                loaded.predict_proba(NEW)
        else:
            np.testing.assert_allclose(loaded.predict_proba(NEW), pipe.predict_proba(NEW),
                                       atol=1e-4)
    else:  # a transformer head: transform runs the whole pipeline
        np.testing.assert_allclose(loaded.transform(NEW), pipe.transform(NEW), atol=1e-3)


def test_cli_export_then_load_in_a_process_without_torch(tiny_model, tmp_path):
    pipe = make_pipeline(_feat(tiny_model, layers=-2, pooling="mean"),
                         LogisticRegression(max_iter=500)).fit(TEXTS, LABELS)
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    out = tmp_path / "deploy"
    assert main(["export", str(tmp_path / "pipe.joblib"), str(out)]) == 0
    assert main(["export", str(tmp_path / "pipe.joblib"), str(out)]) == 2  # exists already
    np.save(tmp_path / "want.npy", pipe.predict_proba(NEW))
    (tmp_path / "texts.json").write_text(json.dumps(NEW))
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        for name in ("torch", "transformers", "sklearn", "scipy"):
            sys.modules[name] = None  # importing any of them fails from here on
        from bertfeat import runtime
        pipe = runtime.load({str(out)!r})
        texts = json.loads(open({str(tmp_path / "texts.json")!r}).read())
        got = pipe.predict_proba(texts)
        np.testing.assert_allclose(got, np.load({str(tmp_path / "want.npy")!r}), atol=1e-5)
        assert list(pipe.predict(texts)) == list(got.argmax(1))
        print("ok", [m for m in ("torch", "transformers", "sklearn") if sys.modules.get(m)])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok []"


def test_text_union_exports_with_its_tfidf_block(tiny_model, tmp_path):
    union = TextUnion(bert=_feat(tiny_model, layers=-1, pooling="mean"))
    pipe = make_pipeline(union, LogisticRegression(max_iter=500)).fit(TEXTS, LABELS)
    export_pipeline(pipe, tmp_path / "u", verbose=False)
    loaded = runtime.load(tmp_path / "u")
    np.testing.assert_allclose(loaded.transform(NEW), pipe[0].transform(NEW).toarray(),
                               atol=1e-5)
    np.testing.assert_array_equal(loaded.predict(NEW), pipe.predict(NEW))
    np.testing.assert_allclose(loaded.predict_proba(NEW), pipe.predict_proba(NEW), atol=1e-5)


def test_int8_export_is_faithful_and_uses_integer_products(tiny_model, tmp_path, capsys):
    import onnx

    feat = _feat(tiny_model, layers=-1, pooling="mean").fit(TEXTS)
    report = export_pipeline(feat, tmp_path / "q", precision="int8", check_texts=TEXTS)
    assert "int8" in capsys.readouterr().out and report.precision == "int8"
    graph = onnx.load(str(tmp_path / "q" / "encoder.onnx")).graph
    weights = {i.name for i in graph.initializer}
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMulIntegerToFloat") == 3 * 6  # q, k, v, out, up, down per layer
    # what stays float is activation x activation (attention scores and their mix)
    assert not [n for n in graph.node if n.op_type in ("MatMul", "Gemm")
                and n.input[1] in weights]
    got = runtime.load(tmp_path / "q").encode(NEW)
    assert _cos(got, feat.transform(NEW)).mean() >= 0.99
    assert report.cosine_mean >= 0.99


class _Custom(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_steps_that_cannot_be_exported_are_named(tiny_model, tmp_path):
    pipe = make_pipeline(_feat(tiny_model), _Custom(), LogisticRegression()).fit(TEXTS, LABELS)
    with pytest.raises(ExportError, match=r"'_custom' \(_Custom\) has no ONNX converter"):
        export_pipeline(pipe, tmp_path / "x", verbose=False)
    assert not (tmp_path / "x").exists()  # refused before anything was written
    with pytest.raises(ExportError, match="first step 'standardscaler'"):
        export_pipeline(make_pipeline(StandardScaler(), LogisticRegression()).fit(
            [[0.0], [1.0]], [0, 1]), tmp_path / "y")
    chunked = _feat(tiny_model, long_text="chunk").fit(TEXTS)
    with pytest.raises(ExportError, match="precision"):
        export_pipeline(chunked, tmp_path / "z", precision="bf16")


def test_runtime_rejects_bad_input_and_streams_agree(tiny_model, tmp_path):
    export_pipeline(_feat(tiny_model, batch_size=3).fit(TEXTS), tmp_path / "e",
                    verbose=False, check_texts=["a"])
    loaded = runtime.load(tmp_path / "e")
    # 14 batches of 3: two in flight at once give the same rows as one at a time
    np.testing.assert_array_equal(runtime.load(tmp_path / "e", streams=2).encode(TEXTS),
                                  runtime.load(tmp_path / "e", streams=1).encode(TEXTS))
    with pytest.raises(TypeError, match="single string"):
        loaded.encode("a text")
    with pytest.raises(TypeError, match="row 1"):
        loaded.encode(["fine", None])
    assert loaded.encode([]).shape == (0, 32)
    series = pd.Series(["good film", "good film", "bad"])
    np.testing.assert_array_equal(loaded.encode(series)[0], loaded.encode(series)[1])
    with pytest.raises(FileNotFoundError, match="no manifest"):
        runtime.load(tmp_path)


@needs_default_model
def test_bundled_model_export_agrees_on_sst2(shared_data, tmp_path):
    """A subset (the full SST-2 test agreement is in benchmarks/bench_export.py)."""
    train = pd.read_csv(shared_data / "sst2_train.csv").iloc[:200]
    test = pd.read_csv(shared_data / "sst2_test.csv").iloc[:150]
    # the (per-test) store: predict reads the vectors transform wrote
    pipe = make_pipeline(BertFeaturizer(layers=[-2, -1], pooling="mean", layer_combine="mean",
                                        precision="fp32"),
                         LogisticRegression(max_iter=2000))
    pipe.fit(train.text.tolist(), train.label)
    export_pipeline(pipe, tmp_path / "sst2", verbose=False)
    loaded = runtime.load(tmp_path / "sst2")
    texts = test.text.tolist()
    assert _cos(loaded.encode(texts), pipe[0].transform(texts)).min() >= 0.9999
    agree = (loaded.predict(texts) == pipe.predict(texts)).mean()
    assert agree >= 149 / 150, agree


def test_int8_export_is_refused_on_a_cpu_without_vnni():
    from bertfeat.deploy.sessions import check_int8_cpu

    with pytest.raises(ValueError, match="no int8 dot-product"):
        check_int8_cpu(frozenset({"sse2", "avx2"}))
    check_int8_cpu(frozenset({"sse2", "avx2", "avx_vnni"}))  # accepted
    check_int8_cpu(frozenset({"asimd", "asimddp"}))  # not x86: nothing known wrong


# mixed lengths, 4 texts a batch: most rows of a batch are padded, some to 10x their length
_MIXED = [" ".join(_rng.choice(WORDS, size=n)) for n in (1, 40, 3, 25, 2, 60, 7, 12, 33, 5)]


def test_export_traces_eager_attention_exact_on_padded_batches(tiny_model, tmp_path):
    import onnx

    feat = _feat(tiny_model, layers=[0, 2, 3], pooling="mean_max", layer_combine="concat",
                 batch_size=4).fit(TEXTS)
    export_pipeline(feat, tmp_path / "f", verbose=False)
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["graph"] == {"attention": "eager"}
    ops = [n.op_type for n in onnx.load(str(tmp_path / "f" / "encoder.onnx")).graph.node]
    # per layer one Softmax between two activation products; no SDPA guards (IsNaN/Where)
    assert ops.count("Softmax") == 3 and "IsNaN" not in ops
    got = runtime.load(tmp_path / "f", streams=1).encode(_MIXED)
    assert _cos(got, feat.transform(_MIXED)).min() >= 0.9999


def test_runtime_keeps_every_stream_busy(tiny_model, tmp_path):
    export_pipeline(_feat(tiny_model, batch_size=3).fit(TEXTS), tmp_path / "e",
                    verbose=False, check_texts=["a"])
    loaded = runtime.load(tmp_path / "e", threads=2, streams=2)
    assert loaded._encoder.get_session_options().intra_op_num_threads == 1

    class CountingSession:
        def __init__(self, session):
            self.session, self.rows = session, []

        def run(self, names, feeds):
            self.rows.append(len(feeds["input_ids"]))
            return self.session.run(names, feeds)

    spy = loaded._encoder = CountingSession(loaded._encoder)
    one = loaded.encode(TEXTS[:3])  # one batch of 3: split in two, one per stream
    assert sorted(spy.rows) == [1, 2]
    spy.rows.clear()
    many = loaded.encode(TEXTS)  # 14 batches of 3, two in flight
    assert sorted(spy.rows) == [1] + [3] * 13
    np.testing.assert_allclose(many[:3], one, atol=1e-6)

def test_runtime_token_budget_is_the_featurizers_capped(tiny_model, tmp_path, monkeypatch):
    from bertfeat import runtime as rt

    seen = []
    real = rt.make_batches
    monkeypatch.setattr(rt, "make_batches",
                        lambda lengths, size, tokens: seen.append(tokens) or real(
                            lengths, size, tokens))
    export_pipeline(_feat(tiny_model).fit(TEXTS), tmp_path / "d", verbose=False,
                    check_texts=["a"])
    export_pipeline(_feat(tiny_model, max_batch_tokens=40).fit(TEXTS), tmp_path / "s",
                    verbose=False, check_texts=["a"])
    want = rt.load(tmp_path / "d").encode(TEXTS)  # the featurizer's default 4096: capped
    np.testing.assert_allclose(rt.load(tmp_path / "s").encode(TEXTS), want, atol=1e-5)
    np.testing.assert_allclose(rt.load(tmp_path / "d", max_batch_tokens=16).encode(TEXTS),
                               want, atol=1e-5)
    assert seen[-3:] == [rt.BATCH_TOKENS, 40, 16]
    with pytest.raises(ValueError, match="max_batch_tokens"):
        rt.load(tmp_path / "d", max_batch_tokens=-1)
