"""Real labelled datasets shipped with the package (CC BY 4.0, see data/ATTRIBUTION.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["DATASETS", "dataset_path", "load_dataset"]

_DATA = Path(__file__).resolve().parents[1] / "data"  # src/bertfeat/data

#: name -> (file, description)
DATASETS = {
    "sms_spam": ("sms_spam.csv", "SMS spam collection: 5,574 texts, ham/spam (CC BY 4.0)"),
    "banking77": ("banking77_train.csv", "banking77 intents, train split: 10,003 texts, "
                                         "77 classes (CC BY 4.0)"),
    "banking77_test": ("banking77_test.csv", "banking77 intents, test split: 3,080 texts "
                                             "(CC BY 4.0)"),
}


def dataset_path(name: str) -> Path:
    """Path of a shipped dataset's CSV file.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; shipped: {sorted(DATASETS)}")
    return _DATA / DATASETS[name][0]


def load_dataset(name: str = "sms_spam") -> pd.DataFrame:
    """Load a shipped dataset as a DataFrame with columns ``text`` and ``label``.

    Parameters
    ----------
    name : str, default="sms_spam"
        One of :data:`DATASETS`.

    Returns
    -------
    pandas.DataFrame
    """
    return pd.read_csv(dataset_path(name), keep_default_na=False, dtype={"text": str})
