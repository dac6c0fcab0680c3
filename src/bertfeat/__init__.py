"""bertfeat: BERT-family encoders as scikit-learn features, with an on-disk feature store.

>>> from bertfeat import BertFeaturizer, FeatureStore

The public classes are imported on first use (PEP 562), so ``import bertfeat.runtime``
(the torch-free runtime of an exported pipeline) loads neither scikit-learn nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BertClassifier", "BertFeaturizer", "BertRegressor", "BertWordFeaturizer",
           "FeatureStore", "TextUnion", "WordTagger", "__version__"]
__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY = {"BertFeaturizer": ".featurizer", "FeatureStore": ".store", "TextUnion": ".union",
         "BertWordFeaturizer": ".words", "WordTagger": ".words",
         "BertClassifier": ".finetune", "BertRegressor": ".finetune"}


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
