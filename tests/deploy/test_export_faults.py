"""Issue 27: export and the torch-free runtime under bad input and damaged folders.

The export is written into a temporary folder and renamed into place only when complete;
the manifest records a sha256 of every file and of its own settings, which the runtime
checks at load. Every case is one row of ``docs/bad_input_policy.md`` ("Export and
runtime"), registered in the catalogue.
"""

from __future__ import annotations

import json
import shutil
import warnings

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bertfeat import BertFeaturizer, runtime
from bertfeat.cli import main
from bertfeat.deploy import graph as graph_module
from bertfeat.deploy import head as head_module
from bertfeat.deploy import manifest as manifest_module
from bertfeat.export import ExportError, export_pipeline

from ..catalogue import Catalogue
from ..conftest import WORDS

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

CASES = Catalogue("export/runtime")

_rng = np.random.default_rng(1)
TEXTS = [" ".join(_rng.choice(WORDS, size=int(_rng.integers(1, 12)))) for _ in range(30)]
#: labels an int32 would wrap: 10**12 came back as -727379968
LABELS = np.where([("good" in t) or ("love" in t) for t in TEXTS], 10**12, -3)


@pytest.fixture(scope="module")
def fitted(tiny_model):
    return make_pipeline(BertFeaturizer(model=tiny_model, precision="fp32", cache=False),
                         LogisticRegression(max_iter=500)).fit(TEXTS, LABELS)


@pytest.fixture(scope="module")
def exported_dir(fitted, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "pipe"
    export_pipeline(fitted, out, verbose=False, check_texts=TEXTS[:4])
    return out


@pytest.fixture(scope="module")
def exported(exported_dir):
    return runtime.load(exported_dir)


@pytest.fixture
def copy(exported_dir, tmp_path):
    """A fresh copy of the export to damage."""
    target = tmp_path / "copy"
    shutil.copytree(exported_dir, target)
    return target


def _rewrite_manifest(folder, change, keep_digest=True):
    """Edit manifest.json; ``keep_digest``: recompute its own digest (a buggy exporter)."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    if keep_digest:
        manifest["manifest_sha256"] = manifest_module.manifest_digest(manifest)
    path.write_text(json.dumps(manifest))


# ------------------------------------------------------------------------ runtime input
@CASES.input("labels beyond int32 (-3, 10**12) keep their values and dtype")
def _int64_labels(exported, fitted):
    got = exported.predict(TEXTS)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, fitted.predict(TEXTS))
    assert set(got) <= {-3, 10**12}


@CASES.input("predict([]) / predict_proba([]) / transform([])")
def _empty(exported):
    assert exported.predict([]).shape == (0,)
    assert exported.predict([]).dtype == np.int64
    assert exported.predict_proba([]).shape == (0, 2)
    assert exported.transform([]).shape == (0, exported.n_features_out_)


@CASES.input("an empty generator")
def _empty_generator(exported):
    assert exported.predict(t for t in []).shape == (0,)


@CASES.input("a generator of texts")
def _generator(exported):
    np.testing.assert_array_equal(exported.predict(t for t in TEXTS[:5]),
                                  exported.predict(TEXTS[:5]))


@CASES.input("a lone surrogate: U+FFFD, as the featurizer")
def _surrogate(exported, fitted):
    with pytest.warns(UserWarning, match=r"1 text\(s\) hold lone UTF-16 surrogates "
                                         r"\(first: row 1\).*U\+FFFD"):
        got = exported.transform(["good film", "good \ud800 film"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = fitted[0].transform(["good film", "good \ud800 film"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    np.testing.assert_array_equal(got[1], exported.transform(["good \ufffd film"])[0])


@CASES.input("a set of texts")
def _set(exported):
    with pytest.raises(TypeError, match="got a set, which has no order"):
        exported.predict({"good film", "bad plot"})


@CASES.input("a frozenset of texts")
def _frozenset(exported):
    with pytest.raises(TypeError, match="frozenset, which has no order"):
        exported.transform(frozenset(["good film"]))


@CASES.input("a dict of texts")
def _dict(exported):
    with pytest.raises(TypeError, match=r"got a dict; pass its values"):
        exported.predict({"a": "good film"})


@CASES.input("a missing row (None)")
def _none_row(exported):
    with pytest.raises(TypeError, match="row 1: expected a string, got NoneType"):
        exported.predict(["good film", None])


@CASES.input("a 2-D array of texts")
def _two_d(exported):
    with pytest.raises(ValueError, match=r"array of shape \(2, 2\)"):
        exported.predict(np.full((2, 2), "good film"))


@CASES.input("an (n, 1) array of texts")
def _n_by_one(exported):
    np.testing.assert_array_equal(exported.predict(np.array([[t] for t in TEXTS[:4]])),
                                  exported.predict(TEXTS[:4]))


@CASES.input("a number instead of texts")
def _number(exported):
    with pytest.raises(TypeError, match="expected a sequence of texts, got int"):
        exported.predict(5)


# ---------------------------------------------------------------------- export input
@CASES.input("`bertfeat export` of a file that is not a pickle")
def _not_a_pickle(tmp_path, capsys):
    bad = tmp_path / "notapickle.joblib"
    bad.write_text("hello, not a pickle")
    assert main(["export", str(bad), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "notapickle.joblib cannot be loaded as a fitted pipeline" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@CASES.input("`bertfeat export` of a pickle that holds no pipeline")
def _pickle_of_a_list(tmp_path, capsys):
    path = tmp_path / "list.joblib"
    joblib.dump([1, 2, 3], path)
    assert main(["export", str(path), str(tmp_path / "out")]) == 2
    assert "BertFeaturizer, TextUnion or TfidfVectorizer" in capsys.readouterr().err


@CASES.input("`bertfeat export` of a truncated joblib file")
def _truncated_joblib(fitted, tmp_path, capsys):
    path = tmp_path / "pipe.joblib"
    joblib.dump(fitted, path)
    path.write_bytes(path.read_bytes()[:200])
    assert main(["export", str(path), str(tmp_path / "out")]) == 2
    assert "cannot be loaded as a fitted pipeline" in capsys.readouterr().err


@CASES.input("export into a path that is a file")
def _outdir_is_file(fitted, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_pipeline(fitted, target, verbose=False, overwrite=True)
    assert target.read_text() == "x"


@CASES.input("export --overwrite into a folder holding other files")
def _outdir_with_other_files(fitted, exported_dir, tmp_path):
    target = tmp_path / "mine"
    shutil.copytree(exported_dir, target)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"not empty \(it holds \['notes.txt'\]"):
        export_pipeline(fitted, target, verbose=False, overwrite=True)
    assert (target / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------ faults
@CASES.fault("tokenizer.json with permuted ids")
def _permuted_tokenizer(copy):
    path = copy / "tokenizer.json"
    spec = json.loads(path.read_text())
    vocab = spec["model"]["vocab"]
    words = sorted(vocab, key=vocab.get)
    ids = [vocab[w] for w in words]
    spec["model"]["vocab"] = dict(zip(words, ids[1:] + ids[:1]))
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"tokenizer\.json was changed after the export"):
        runtime.load(copy)


@CASES.fault("a flipped setting in manifest.json")
def _flipped_setting(copy):
    _rewrite_manifest(copy, lambda m: m["settings"].update(normalize=True),
                      keep_digest=False)
    with pytest.raises(ValueError, match=r"manifest\.json was changed after the export"):
        runtime.load(copy)


@CASES.fault("manifest.json truncated")
def _truncated_manifest(copy):
    path = copy / "manifest.json"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"manifest\.json is not valid JSON.*truncated"):
        runtime.load(copy)


@CASES.fault("encoder.onnx deleted")
def _missing_encoder(copy):
    (copy / "encoder.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"encoder\.onnx is missing"):
        runtime.load(copy)


@CASES.fault("one byte of head.onnx flipped")
def _flipped_head(copy):
    path = copy / "head.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"head\.onnx was changed after the export"):
        runtime.load(copy)


@CASES.fault("max_length out of range in the manifest")
def _max_length(copy):
    _rewrite_manifest(copy, lambda m: m.update(max_length=10**6))
    with pytest.raises(ValueError, match=r"max_length=1000000 is out of range"):
        runtime.load(copy)
    _rewrite_manifest(copy, lambda m: m.update(max_length=0))
    with pytest.raises(ValueError, match=r"max_length=0 is out of range"):
        runtime.load(copy)


@CASES.fault("n_features in the manifest differs from the graph")
def _n_features(copy):
    _rewrite_manifest(copy, lambda m: m.update(n_features=m["n_features"] + 3))
    with pytest.raises(ValueError, match=r"n_features=35.*inconsistent"):
        runtime.load(copy).transform(["good film"])


@CASES.fault("export --overwrite whose head conversion fails")
def _overwrite_fails(fitted, exported_dir, copy, monkeypatch):
    before = {p.name: p.read_bytes() for p in copy.iterdir()}

    def broken(*args, **kwargs):
        raise ExportError("the head could not be converted (injected)")

    monkeypatch.setattr(head_module, "export_head", broken)
    with pytest.raises(ExportError, match="injected"):
        export_pipeline(fitted, copy, overwrite=True, verbose=False)
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before  # untouched
    assert [p.name for p in copy.parent.iterdir()] == ["copy"]  # no temporary folder left
    np.testing.assert_array_equal(runtime.load(copy).predict(TEXTS[:3]),
                                  fitted.predict(TEXTS[:3]))


@CASES.fault("export interrupted (Ctrl-C) while tracing the encoder")
def _interrupted(fitted, tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(graph_module, "export_onnx", interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_pipeline(fitted, tmp_path / "new", verbose=False)
    assert list(tmp_path.iterdir()) == []  # neither OUTDIR nor a temporary folder


@CASES.fault("an export folder of format 1 (no digests)")
def _format_one(copy, exported):
    def old(m):
        m["format"] = 1
        for key in ("files", "manifest_sha256"):
            m.pop(key)
    _rewrite_manifest(copy, old, keep_digest=False)
    with pytest.warns(UserWarning, match="records no file digests"):
        loaded = runtime.load(copy)
    assert loaded.transform(["good film"]).shape == (1, exported.n_features_out_)


@pytest.mark.parametrize("name", CASES.names())
def test_case(name, request):
    CASES.run(name, request)


def test_overwrite_replaces_a_complete_export(fitted, copy):
    """A successful overwrite: the new export, checked, and nothing else in the parent."""
    report = export_pipeline(fitted[0], copy, overwrite=True, verbose=False)
    assert report.directory == copy
    assert sorted(p.name for p in copy.iterdir()) == ["encoder.onnx", "manifest.json",
                                                      "tokenizer.json"]
    assert [p.name for p in copy.parent.iterdir()] == ["copy"]
    manifest = json.loads((copy / "manifest.json").read_text())
    assert set(manifest["files"]) == {"encoder.onnx", "tokenizer.json"}
    assert manifest["files"]["encoder.onnx"] == manifest_module.file_digest(copy / "encoder.onnx")
    assert runtime.load(copy).transform(["a"]).shape == (1, fitted[0].n_features_out_)
    assert not any((copy / f).read_bytes()[:1] == b"\x80" for f in manifest["files"])
