"""Issue 14: scikit-learn details a user of the ecosystem relies on.

The ``preserves_dtype`` tag says what ``transform`` returns (float32), and a DataFrame whose
text column is named differently from the one seen in ``fit`` is refused, as scikit-learn's
own transformers (``StandardScaler``) refuse unseen feature names.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from bertfeat import BertFeaturizer

from ..equality import assert_same_computation

TEXTS = ["good film", "awful plot", "great music", "boring story"]


def _featurizer(model: str) -> BertFeaturizer:
    return BertFeaturizer(model=model, cache=False, precision="fp32", pooling="mean")


def test_preserves_dtype_tag_is_the_output_dtype(tiny_model):
    featurizer = _featurizer(tiny_model)
    assert featurizer.__sklearn_tags__().transformer_tags.preserves_dtype == ["float32"]
    out = featurizer.fit_transform(TEXTS)
    assert out.dtype == np.dtype(featurizer.__sklearn_tags__().transformer_tags.
                                 preserves_dtype[0])


def test_transform_refuses_another_column_name_like_standard_scaler(tiny_model):
    featurizer = _featurizer(tiny_model).fit(pd.DataFrame({"review": TEXTS}))
    renamed = pd.DataFrame({"text": TEXTS})
    with pytest.raises(ValueError, match="feature names should match") as ours:
        featurizer.transform(renamed)
    assert "'review'" in str(ours.value) and "'text'" in str(ours.value)
    scaler = StandardScaler().fit(pd.DataFrame({"review": [1.0, 2.0]}))
    with pytest.raises(ValueError) as theirs:
        scaler.transform(pd.DataFrame({"text": [1.0, 2.0]}))
    # the same first lines as scikit-learn's own message
    assert str(ours.value).startswith(re.split(r"\n(?=BertFeaturizer)", str(theirs.value))[0]
                                      .rstrip("\n"))


def test_transform_accepts_the_same_column_and_plain_sequences(tiny_model):
    featurizer = _featurizer(tiny_model).fit(pd.DataFrame({"review": TEXTS}))
    same = featurizer.transform(pd.DataFrame({"review": TEXTS}))
    assert_same_computation(same, featurizer.transform(TEXTS))
    assert_same_computation(same, featurizer.transform(pd.Series(TEXTS, name="other")))
    # fitted without a column name: any 1-column DataFrame is fine
    unnamed = _featurizer(tiny_model).fit(TEXTS)
    assert_same_computation(unnamed.transform(pd.DataFrame({"x": TEXTS})), same)
