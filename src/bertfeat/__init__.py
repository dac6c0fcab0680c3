"""bertfeat: BERT-family encoders as scikit-learn features, with an on-disk feature store.

>>> from bertfeat import BertFeaturizer, FeatureStore

The public classes are imported on first use (PEP 562), so ``import bertfeat.runtime``
(the torch-free runtime of an exported pipeline) loads neither scikit-learn nor torch.

The packages follow the data path, one layer each: ``io`` (rows and files in),
``estimators`` (the scikit-learn faces, on one encoder-backed base), ``engine`` (batching,
encoding and the one cached pass), ``store``/``models``/``pooling``/``hardware`` (what the
engine stands on), ``stats`` and ``probe`` (studies), ``deploy`` (export, the torch-free
runtime, Dask) and ``cli``. The module names of the flat layout before it
(``bertfeat.runtime``, ``bertfeat.datasets``, ``bertfeat.featurizer`` ...) still import:
they are the same module objects as their new homes (:data:`_MOVED`), so documented
imports and pickles written before the move keep working.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

__all__ = ["BertClassifier", "BertFeaturizer", "BertRegressor", "BertWordFeaturizer",
           "FeatureStore", "TextUnion", "WordTagger", "__version__"]
__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY = {"BertFeaturizer": ".estimators.featurizer", "FeatureStore": ".store",
         "TextUnion": ".estimators.union", "BertWordFeaturizer": ".estimators.words",
         "WordTagger": ".estimators.tagger", "BertClassifier": ".estimators.finetune",
         "BertRegressor": ".estimators.finetune"}

#: module of the flat layout -> its home now (``bertfeat.X`` imports ``bertfeat.<home>``)
_MOVED = {
    "featurizer": "estimators.featurizer", "words": "estimators.words",
    "finetune": "estimators.finetune", "union": "estimators.union",
    "base": "estimators.base", "params": "estimators.params",
    "encoder": "engine.encoder", "wordencoder": "engine.wordencoder",
    "cached_pass": "engine.cached_pass", "text_pass": "engine.text_pass",
    "word_pass": "engine.word_pass", "_linear": "models.linear",
    "batching": "engine.batching", "progress": "engine.progress",
    "inputs": "io.inputs", "tables": "io.tables", "conll": "io.conll",
    "datasets": "io.datasets",
    "cvstats": "stats.cvstats", "tagscore": "stats.tagscore",
    "export": "deploy.export", "runtime": "deploy.runtime", "distributed": "deploy.distributed",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import ``bertfeat.<old name>`` as the module at its new home (the same object)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        head, _, name = fullname.partition(".")
        if head == __name__ and name in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{_MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module) -> None:  # the real module ran at its home already
        return None


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    try:  # bertfeat.models etc. without an explicit import, as before
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
