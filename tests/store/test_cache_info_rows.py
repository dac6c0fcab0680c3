"""Issue 28: ``bertfeat cache info`` tells apart encodings of the same model.

Truncated, chunked and word-level encodings of one model are three fingerprints; each row
says its kind, long-text mode, precision and max_length, and the word-level row counts
the sentences it holds (it showed 0 texts while the store served them).
"""

from __future__ import annotations

import json

from bertfeat import BertFeaturizer, BertWordFeaturizer, FeatureStore
from bertfeat.cli import main

from ..conftest import WORDS

TEXTS = [" ".join(WORDS[i:i + 3 + i % 5]) for i in range(12)] + [" ".join(WORDS) * 3]
SENTENCES = [WORDS[i:i + 4] for i in range(7)]


def test_rows_tell_the_encodings_apart(tiny_model, tmp_path, capsys):
    cache = str(tmp_path / "store")
    common = dict(model=tiny_model, precision="fp32", cache=cache)
    BertFeaturizer(**common).fit(TEXTS).transform(TEXTS)
    chunked = BertFeaturizer(long_text="chunk", chunk_stride=8, max_chunks=4, **common)
    chunked.fit(TEXTS).transform(TEXTS)
    BertWordFeaturizer(layers=-1, **common).fit(SENTENCES).transform(SENTENCES)
    capsys.readouterr()
    assert main(["--cache-dir", cache, "cache", "info"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if tiny_model[-20:] in line]
    assert len(rows) == 3, out
    header = next(line for line in out.splitlines() if "fingerprint" in line)
    assert all(name in header for name in ("kind", "long text", "prec", "max_len", "stored"))
    truncated = [r for r in rows if " texts  truncate " in r]
    chunked = [r for r in rows if " texts  chunk s=8 m=4 " in r]
    words = [r for r in rows if " words  words s=" in r]
    assert len(truncated) == len(chunked) == len(words) == 1, out
    assert words[0].split()[-4:] == ["7", "0", "7", "7"]  # sentences, hits, misses, encoded
    assert truncated[0].split()[-4] == truncated[0].split()[-1] == "13"  # stored, encoded
    by_mode = {"t": truncated[0].split(), "c": chunked[0].split(), "w": words[0].split()}
    assert all("fp32" in fields for fields in by_mode.values())
    stats = FeatureStore(cache).stats()["models"]
    (words,) = [m for m in stats.values() if m["model"].get("kind") == "words"]
    assert words["sentences"] == 7 and words["sentences_encoded"] == 7
    assert main(["--cache-dir", cache, "cache", "info", "--json"]) == 0
    assert sorted(m.get("sentences", -1) for m in json.loads(
        capsys.readouterr().out)["models"].values()) == [-1, -1, 7]
