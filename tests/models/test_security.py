"""Issue 6, item 7: files from elsewhere never run code.

* The store never unpickles: its own database holds only blobs, text and integers, and a
  pickle payload planted in a store of the old diskcache layout (in the database or as
  a value file) is ignored with a warning by the migration (``test_store_legacy.py``).
* Models load with ``trust_remote_code=False`` unless the user opts in: a model whose
  config maps to shipped Python code either loads with transformers' own classes (known
  ``model_type``) or is refused in ``fit``; the shipped code never runs.
* Loading prefers safetensors: a ``pytorch_model.bin`` beside ``model.safetensors`` is
  never unpickled; a ``.bin`` alone goes through ``torch.load(weights_only=True)``,
  which refuses a payload.

Every payload here is shown to be live (it does run when loaded the unsafe way), so
each test would fail if bertfeat took that path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from bertfeat import BertFeaturizer, models

from ..conftest import make_tiny_model
from ..equality import assert_within_bound

TEXTS = ["good film", "bad plot", "what a boring story", "i love this movie"]


class _Payload:
    """Unpickling it writes a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def featurizer(model: str, cache=False, **kwargs) -> BertFeaturizer:
    kwargs.setdefault("precision", "fp32")
    return BertFeaturizer(model=model, cache=cache, **kwargs)


# ------------------------------------------------------------------------- the store


def test_the_store_has_no_pickle_path():
    """The store's own database holds only blobs, text and integers (its values are
    decoded by :func:`bertfeat.store.decode_array`, never unpickled). A pickle planted in
    a store of the old diskcache layout is ignored by its migration:
    ``tests/store/test_store_legacy.py``."""
    import bertfeat.store as store_package

    sources = [p.read_text() for p in Path(store_package.__file__).parent.glob("*.py")]
    assert not [s for s in sources if "import pickle" in s or "pickle.load" in s]


# ---------------------------------------------------------------- remote code


_SHIPPED_CODE = """
from pathlib import Path
Path({marker!r}).write_text("shipped code ran")
from transformers import BertConfig, BertModel, BertTokenizerFast


class EvilConfig(BertConfig):
    model_type = {model_type!r}


class EvilModel(BertModel):
    config_class = EvilConfig


class EvilTokenizer(BertTokenizerFast):
    pass
"""


def _model_with_shipped_code(directory: Path, model_type: str, marker: Path) -> Path:
    make_tiny_model(directory)
    (directory / "evil_model.py").write_text(
        _SHIPPED_CODE.format(marker=str(marker), model_type=model_type))
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "evil_model.EvilConfig",
                          "AutoModel": "evil_model.EvilModel"}
    (directory / "config.json").write_text(json.dumps(config))
    tok_config = json.loads((directory / "tokenizer_config.json").read_text())
    tok_config["auto_map"] = {"AutoTokenizer": [None, "evil_model.EvilTokenizer"]}
    (directory / "tokenizer_config.json").write_text(json.dumps(tok_config))
    return directory


def test_known_type_with_auto_map_loads_without_running_shipped_code(tiny_model, tmp_path):
    marker = tmp_path / "marker"
    model_dir = _model_with_shipped_code(tmp_path / "model", "bert", marker)
    out = featurizer(str(model_dir)).fit(TEXTS).transform(TEXTS)
    assert not marker.exists()
    # transformers' own BertModel with the same weights: the same vectors
    plain = featurizer(tiny_model).fit(TEXTS).transform(TEXTS)
    assert_within_bound(out, plain)


def test_unknown_type_needing_shipped_code_is_refused_in_fit(tmp_path):
    marker = tmp_path / "marker"
    model_dir = _model_with_shipped_code(tmp_path / "model", "evil-bert", marker)
    with pytest.raises(ValueError, match=r"type 'evil-bert'.*auto_map.*trust_remote_code=True"):
        featurizer(str(model_dir)).fit(TEXTS)
    # even forcing past fit, the loader refuses too (transformers' own check)
    info = models.resolve_model(str(model_dir))
    with pytest.raises(ValueError, match="trust_remote_code"):
        models.load(info, depth=1, device="cpu", precision="fp32")
    assert not marker.exists()


def test_shipped_code_runs_only_with_the_opt_in(tmp_path):
    """The control: with trust_remote_code=True the same model's code does run (in a
    subprocess, so transformers' module cache goes to a temporary directory)."""
    marker = tmp_path / "marker"
    model_dir = _model_with_shipped_code(tmp_path / "model", "evil-bert", marker)
    code = textwrap.dedent("""
        import sys
        from bertfeat import BertFeaturizer
        out = BertFeaturizer(model=sys.argv[1], cache=False, trust_remote_code=True).fit(
            ["good film"]).transform(["good film"])
        assert out.shape == (1, 32), out.shape
    """)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(model_dir)], env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert marker.read_text() == "shipped code ran"


def test_trust_remote_code_is_off_by_default():
    assert BertFeaturizer().trust_remote_code is False


# -------------------------------------------------------------- safetensors first


def _malicious_bin(path: Path, marker: Path) -> None:
    import torch

    torch.save({"embeddings.word_embeddings.weight": _Payload(str(marker))}, path)


def test_safetensors_preferred_over_a_malicious_bin(tiny_model, tmp_path):
    import torch

    marker = tmp_path / "marker"
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    assert (model_dir / "model.safetensors").exists()
    _malicious_bin(model_dir / "pytorch_model.bin", marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = featurizer(str(model_dir), cache=str(tmp_path / "store")).fit(TEXTS)
        out = fitted.transform(TEXTS)
    assert not marker.exists()  # never unpickled: not to load, not to fingerprint
    reference = featurizer(tiny_model).fit(TEXTS).transform(TEXTS)
    assert_within_bound(out, reference)
    # the payload is live
    torch.load(model_dir / "pytorch_model.bin", weights_only=False)
    assert marker.read_text() == "pwned"


def test_bin_only_checkpoint_is_loaded_weights_only(tmp_path):
    marker = tmp_path / "marker"
    model_dir = make_tiny_model(tmp_path / "model")
    (model_dir / "model.safetensors").unlink()
    _malicious_bin(model_dir / "pytorch_model.bin", marker)
    fitted = featurizer(str(model_dir)).fit(TEXTS)  # fit reads no weights
    with pytest.raises(Exception, match="(?i)weights.only"):
        fitted.transform(TEXTS)
    assert not marker.exists()
