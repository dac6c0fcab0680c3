"""Issue 27: the store under a held database, its trust model, and old pickles.

Every counted case is a row of ``docs/bad_input_policy.md`` ("Store and pickles").
"""

from __future__ import annotations

import copyreg
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from bertfeat import BertFeaturizer, FeatureStore, cli
from bertfeat import store as store_module
from bertfeat.store import StoreError, text_digest

from ..catalogue import Catalogue

CASES = Catalogue("store/pickles")
TEXTS = ["good film", "bad plot", "the story was fun"]

#: holds a read transaction on a database taken out of WAL mode: the store's open
#: (``PRAGMA journal_mode = wal``) then waits for it (diskcache's retried for a fixed 60 s)
_READER = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE").fetchone()
    con.execute("BEGIN")
    con.execute("SELECT count(*) FROM meta").fetchone()
    open(sys.argv[2], "w").write("reading")
    time.sleep(120)
""")


def _featurizer(model, cache):
    return BertFeaturizer(model=model, cache=cache, precision="fp32", layers=-1,
                          pooling="mean")


@CASES.fault("a database out of WAL mode held open by a reader (cache info, stats, fit)")
def _held_by_reader(tiny_model, tmp_path, monkeypatch, capsys):
    store_dir = tmp_path / "store"
    store = FeatureStore(store_dir)
    _featurizer(tiny_model, store).fit(TEXTS).transform(TEXTS)
    store.close()  # (leaving WAL mode needs every connection closed)
    flag = tmp_path / "flag"
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(store_dir / "store.db"),
                               str(flag)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert reader.poll() is None, reader.communicate()[1].decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        monkeypatch.setattr(store_module.core, "LOCK_TIMEOUT", 0.5)
        assert cli.main(["cache", "info", "--cache-dir", str(store_dir)]) == 2
        err = capsys.readouterr().err
        assert "locked by another process for more than 0.5 s" in err, err
        with pytest.raises(StoreError, match="more than 0.5 s"):
            FeatureStore(store_dir).stats()
        with pytest.warns(RuntimeWarning, match="cannot use the feature store.*locked"):
            out = _featurizer(tiny_model, str(store_dir)).fit(TEXTS).transform(TEXTS)
        np.testing.assert_array_equal(out, _featurizer(tiny_model, False).fit(TEXTS).transform(
            TEXTS))
    finally:
        reader.kill()
        reader.communicate()


@CASES.fault("the store's open retries on a locked database (bounded by timeout)")
def _retry_bounded(tmp_path, monkeypatch):
    from bertfeat.store import database

    db = database.Database(str(tmp_path / "c"), timeout=2.0)
    attempts = []

    def locked(self):
        attempts.append(1)
        raise sqlite3.OperationalError("database is locked")

    clock = iter(np.arange(0.0, 1000.0, 0.5))  # a fake clock: 0.5 s per reading
    monkeypatch.setattr(database.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(database.time, "sleep", lambda s: None)
    monkeypatch.setattr(database.Database, "_open", locked)
    with pytest.raises(StoreError, match="locked by another process for more than 2 s"):
        db.connection()
    assert len(attempts) == 4  # at 0.5, 1.0, 1.5 s; at 2.0 s the next pause is over: stop
    monkeypatch.undo()
    db.close()


# -------------------------------------------------------------------------- pickles
@pytest.fixture(scope="module")
def fitted(tiny_model):
    return _featurizer(tiny_model, False).fit(TEXTS)


def _old_pickle(featurizer, drop=(), version=None, **params) -> bytes:
    """A pickle as an earlier release wrote it: without ``drop`` (and its version), with
    ``params`` as that release had them."""
    state = {**featurizer.__getstate__(), **params}
    for key in (*drop, "_bertfeat_version"):
        state.pop(key, None)
    if version is not None:
        state["_bertfeat_version"] = version
    cls = type(featurizer)

    class Old:  # pickles as any object does: the class, then its state
        def __reduce__(self):
            return (copyreg._reconstructor, (cls, object, None), state)

    return pickle.dumps(Old())


@CASES.input("a fitted featurizer pickled before pooling_/normalize_ existed (loads)")
def _before_pooling(fitted):
    # that release had no "auto": normalize was a bool (default False)
    old = pickle.loads(_old_pickle(fitted, drop=("pooling_", "normalize_",
                                                 "_fingerprint_settings", "_fingerprint_dtype"),
                                   normalize=False))
    assert old.pooling_ == "mean" and old.normalize_ is False
    np.testing.assert_array_equal(old.transform(TEXTS), fitted.transform(TEXTS))


@CASES.input("a pickle from before a parameter existed (the default, loads)")
def _before_parameter(fitted):
    old = pickle.loads(_old_pickle(fitted, drop=("long_text", "on_bad_input")))
    assert old.get_params()["long_text"] == "truncate"
    np.testing.assert_array_equal(old.transform(TEXTS), fitted.transform(TEXTS))


@CASES.input("a fitted pickle of an unversioned release lacking a fitted attribute")
def _unversioned_missing(fitted):
    with pytest.raises(ValueError, match=r"pickled by an earlier bertfeat \(one that did not "
                                         r"record its version\) and lacks \['max_length_'\]"):
        pickle.loads(_old_pickle(fitted, drop=("max_length_",)))


@CASES.input("a fitted pickle of a named release lacking a fitted attribute")
def _versioned_missing(fitted):
    with pytest.raises(ValueError, match=r"pickled by bertfeat 0\.0\.9 and lacks "
                                         r"\['precision_'\].*fit it again"):
        pickle.loads(_old_pickle(fitted, drop=("precision_",), version="0.0.9"))


@pytest.mark.parametrize("name", CASES.names())
def test_case(name, request):
    CASES.run(name, request)


def test_pickles_record_the_release(fitted):
    from bertfeat import __version__

    again = pickle.loads(pickle.dumps(fitted))
    assert fitted.__getstate__()["_bertfeat_version"] == __version__
    np.testing.assert_array_equal(again.transform(TEXTS), fitted.transform(TEXTS))


def test_the_store_trusts_whoever_can_write_to_it(tiny_model, tmp_path):
    """The trust model the policy states: an entry written under a fingerprint by anyone
    who can write the store is served as it is (entries are checked for damage, not for
    origin). Keep this true in the docs, or protect entries and change this test."""
    store = FeatureStore(tmp_path / "store")
    featurizer = _featurizer(tiny_model, store).fit(TEXTS)
    depth = featurizer.n_layers_ + 1
    planted = np.full((1, depth, 3, featurizer.hidden_size_), 7.0, dtype=np.float32)
    store.write(featurizer.fingerprint_, [text_digest("planted text")], planted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = featurizer.transform(["planted text"])
    np.testing.assert_array_equal(out, np.full_like(out, 7.0))
