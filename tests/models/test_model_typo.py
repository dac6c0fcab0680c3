"""Issue 28: a mistyped model name says what it may have meant, without a long hub error.

No network is used: the hub download is replaced by a function that records its calls
and fails as an unreachable hub does.
"""

from __future__ import annotations

import pytest

from bertfeat import BertFeaturizer, models
from bertfeat.cli import main


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """An empty offline hub cache with one cached model, and a hub that cannot be reached."""
    cache = tmp_path / "hf"
    (cache / "models--org--tiny-bert-base").mkdir(parents=True)
    monkeypatch.setattr(models.hub, "_hub_cache_dir", lambda: cache)
    calls = []

    def snapshot_download(repo_id, revision=None, allow_patterns=None,
                          local_files_only=False):
        calls.append((repo_id, local_files_only))
        raise OSError("Got: ConnectError: [Errno -2] Name or service not known\n"
                      + "a long traceback of the HTTP client\n" * 20)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.chdir(tmp_path)
    return calls


def test_a_typo_of_default_is_caught_offline(hub):
    with pytest.raises(OSError, match=r"model 'defualt' not found: did you mean 'default'\?"
                       ) as err:
        models.resolve_model("defualt")
    assert hub == [("defualt", True)]  # the offline look-up only: no download tried
    message = str(err.value)
    assert "local folder" in message and "Hugging Face cache" in message
    assert "org/tiny-bert-base" in message  # what the cache holds


def test_a_typo_of_a_cached_hub_id_is_named_after_the_download_fails(hub):
    with pytest.raises(OSError, match=r"did you mean 'org/tiny-bert-base'\?") as err:
        models.resolve_model("org/tiny-bert-bsae")
    assert hub == [("org/tiny-bert-bsae", True), ("org/tiny-bert-bsae", False)]
    assert "long traceback" not in str(err.value)  # the hub's error in one line
    assert "Name or service not known" in str(err.value)


def test_a_typo_of_a_local_folder(hub, tmp_path, tiny_model):
    import shutil

    shutil.copytree(tiny_model, tmp_path / "my-model")
    with pytest.raises(OSError, match=r"did you mean 'my-model'\?"):
        models.resolve_model("my-modle")
    assert hub == [("my-modle", True)]
    assert models.near_model_specs("zzzzqqq") == []


def test_the_featurizer_and_the_cli_say_it(hub, capsys, tmp_path):
    with pytest.raises(OSError, match="did you mean 'default'"):
        BertFeaturizer(model="defualt").fit(["a text"])
    csv = tmp_path / "t.csv"
    csv.write_text("text\nhello\n")
    assert main(["embed", str(csv), "-o", str(tmp_path / "o.npy"), "--model", "defualt"]) != 0
    assert "did you mean 'default'?" in capsys.readouterr().err
