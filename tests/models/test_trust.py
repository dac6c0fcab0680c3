"""The fingerprint is trustworthy: no vector is read or written under another model's key.

Issue 12 items 2 and 3 (and issue 14 item 4): a fitted or pickled featurizer re-checks the
model's files before it touches the store; same-size weights copied over a model with the
mtime put back get a new fingerprint; a loaded model in memory is never reused for files
that changed; ``cache=False`` hashes no weights.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from bertfeat import BertFeaturizer, FeatureStore, models

from ..conftest import make_tiny_model
from ..equality import assert_within_bound

TEXTS = ["good film", "awful plot", "what a great story", "boring acting"]
NEW_TEXTS = ["i love this movie", "not very fun"]


@pytest.fixture
def two_models(tmp_path):
    """Directory M holding weights A, and the bytes of same-shaped weights B."""
    a = make_tiny_model(tmp_path / "M", seed=0)
    b = make_tiny_model(tmp_path / "B", seed=1)
    weights_b = (b / "model.safetensors").read_bytes()
    assert len(weights_b) == (a / "model.safetensors").stat().st_size  # same size
    return a, b, weights_b


def _featurizer(path, store):
    return BertFeaturizer(model=str(path), cache=store, pooling="mean", device="cpu",
                          precision="fp32", show_progress=False)


def _new_process():
    """What a fresh interpreter has: no loaded models, no remembered digests."""
    models.forget_loaded()
    models.fingerprints._digest_cache.clear()
    models.fingerprints._digest_told.clear()


def test_pickled_featurizer_refuses_weights_changed_under_it(two_models, tmp_path):
    a, _, weights_b = two_models
    store = FeatureStore(tmp_path / "store")
    fitted = _featurizer(a, store).fit(TEXTS)
    reference = fitted.transform(TEXTS)
    blob = pickle.dumps(fitted)
    entries = store.stats()["entries"]
    weights_a = (a / "model.safetensors").read_bytes()
    (a / "model.safetensors").write_bytes(weights_b)  # fine-tuned into the same directory
    _new_process()
    loaded = pickle.loads(blob)
    with pytest.raises(models.ModelChangedError, match="changed since this BertFeaturizer"):
        loaded.transform(TEXTS + NEW_TEXTS)
    assert store.stats()["entries"] == entries  # nothing written under A's fingerprint
    # the old files back: the pickle works again and reads A's vectors
    (a / "model.safetensors").write_bytes(weights_a)
    _new_process()
    assert_within_bound(pickle.loads(blob).transform(TEXTS), reference)


def test_fitted_featurizer_refuses_weights_changed_in_the_same_process(two_models, tmp_path):
    a, _, weights_b = two_models
    store = FeatureStore(tmp_path / "store")
    fitted = _featurizer(a, store).fit(TEXTS)
    fitted.transform(TEXTS)
    (a / "model.safetensors").write_bytes(weights_b)
    with pytest.raises(models.ModelChangedError):
        fitted.transform(NEW_TEXTS)
    # refitting picks up the new weights under a new fingerprint
    refit = _featurizer(a, store).fit(TEXTS)
    assert refit.fingerprint_ != fitted.fingerprint_
    expected = _featurizer(tmp_path / "B", False).fit(TEXTS).transform(TEXTS)
    assert_within_bound(refit.transform(TEXTS), expected)


def test_same_size_weights_with_mtime_put_back_get_a_new_fingerprint(two_models):
    a, _, weights_b = two_models
    info = models.resolve_model(str(a))
    before = models.fingerprint(info, max_length=32, precision="fp32")
    weights = a / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(weights_b)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # cp -p, touch -d
    assert weights.stat().st_size == stat.st_size
    assert weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert models.fingerprint(info, max_length=32, precision="fp32") != before


def test_a_new_file_with_the_same_size_and_mtime_gets_a_new_fingerprint(two_models, tmp_path):
    # two archives built with a fixed mtime (reproducible builds), unpacked in turn
    a, _, weights_b = two_models
    info = models.resolve_model(str(a))
    before = models.fingerprint(info, max_length=32, precision="fp32")
    weights = a / "model.safetensors"
    stat = weights.stat()
    staged = tmp_path / "staged.safetensors"
    staged.write_bytes(weights_b)
    os.utime(staged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(staged, weights)
    assert models.fingerprint(info, max_length=32, precision="fp32") != before


def test_signature_sees_bytes_changed_at_the_edges_even_with_the_same_times(tmp_path):
    file = tmp_path / "w.bin"
    file.write_bytes(bytes(300_000))
    first = models.file_signature(file)
    with open(file, "r+b") as fh:  # same inode, same size
        fh.seek(-10, os.SEEK_END)
        fh.write(b"x" * 10)
    assert models.file_signature(file)[-1] != first[-1]


def test_a_loaded_model_is_not_reused_for_changed_files(two_models, tmp_path):
    a, _, weights_b = two_models
    fitted = _featurizer(a, False).fit(TEXTS)
    fitted.transform(TEXTS)  # A is now loaded in memory
    # a new file (an overwrite in place would also change the memory-mapped loaded A)
    staged = tmp_path / "staged.safetensors"
    staged.write_bytes(weights_b)
    os.replace(staged, a / "model.safetensors")
    expected = _featurizer(tmp_path / "B", False).fit(TEXTS).transform(TEXTS)
    assert_within_bound(_featurizer(a, False).fit(TEXTS).transform(TEXTS), expected)


def test_files_changing_during_the_load_are_an_error(two_models, tmp_path, monkeypatch):
    a, _, weights_b = two_models
    store = FeatureStore(tmp_path / "store")
    fitted = _featurizer(a, store).fit(TEXTS)
    models.forget_loaded()
    real = models.load

    def load_then_overwrite(*args, **kwargs):
        pair = real(*args, **kwargs)
        (a / "model.safetensors").write_bytes(weights_b)
        return pair

    monkeypatch.setattr(models.loading, "load", load_then_overwrite)
    with pytest.raises(ValueError, match="changed while the model was loading"):
        fitted.transform(TEXTS)
    assert store.stats()["entries"] == 0


def test_fit_without_a_store_fingerprints_and_hashes_each_file_once(tiny_model, monkeypatch):
    # cache=False still takes the fingerprint: a change of the files must be noticed after
    # unpickling too. The digest is remembered per file version in this process.
    models.fingerprints._digest_cache.clear()
    calls = []
    real = models.fingerprints.hashlib.sha256

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(models.fingerprints.hashlib, "sha256", counting)
    fitted = BertFeaturizer(model=tiny_model, cache=False, device="cpu").fit(TEXTS)
    assert fitted.fingerprint_ is not None
    first = len(calls)
    again = BertFeaturizer(model=tiny_model, cache=False, device="cpu").fit(TEXTS)
    assert again.fingerprint_ == fitted.fingerprint_
    assert fitted.transform(TEXTS).shape == (4, fitted.n_features_out_)
    weights = len(list(Path(tiny_model).glob("*.safetensors")))
    assert len(calls) - first == first - weights  # the second fit hashed no weights


def test_a_featurizer_fitted_without_a_store_fingerprints_when_given_one(tiny_model, tmp_path):
    fitted = _featurizer(tiny_model, False).fit(TEXTS)
    store = FeatureStore(tmp_path / "store")
    fitted.set_params(cache=store).__dict__.pop("_rt_store", None)
    fitted.transform(TEXTS)
    assert fitted.fingerprint_ == _featurizer(tiny_model, store).fit(TEXTS).fingerprint_
    assert store.stats()["models"][fitted.fingerprint_]["entries"] == len(TEXTS)


def test_a_warm_start_reads_the_digest_from_the_store(tiny_model, tmp_path, monkeypatch):
    store = FeatureStore(tmp_path / "store")
    first = _featurizer(tiny_model, store).fit(TEXTS)
    _new_process()
    hashed = []
    real = models.fingerprints.hashlib.sha256

    def counting(data=b"", *args, **kwargs):
        hashed.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(models.fingerprints.hashlib, "sha256", counting)
    second = _featurizer(tiny_model, FeatureStore(tmp_path / "store")).fit(TEXTS)
    assert second.fingerprint_ == first.fingerprint_
    # only the small JSON/tokenizer files were hashed whole: the weights digest came
    # from the store (the streaming hasher of file_digest starts empty)
    assert 0 not in hashed


def test_weights_overwritten_while_encoding_stop_the_call(two_models, tmp_path, monkeypatch):
    # memory-mapped weights: bytes written over the file change the loaded model itself
    from bertfeat import encoder

    a, _, weights_b = two_models
    store = FeatureStore(tmp_path / "store")
    texts = [f"{w} film" for w in ("good", "bad", "great", "awful", "boring", "fun")] * 2
    fitted = _featurizer(a, store).set_params(batch_size=2).fit(texts)
    real = encoder._forward_batches

    def overwrite_after_the_first_batch(*args, **kwargs):
        batches = real(*args, **kwargs)
        yield next(batches)
        with open(a / "model.safetensors", "r+b") as fh:  # in place: same inode
            fh.write(weights_b)
        yield from batches

    monkeypatch.setattr(encoder, "_forward_batches", overwrite_after_the_first_batch)
    with pytest.raises(models.ModelChangedError, match="changed while texts were being"):
        fitted.transform(texts)
    assert store.stats()["models"][fitted.fingerprint_]["entries"] == 2  # the first batch
