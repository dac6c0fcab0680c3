"""Issue 28: a fine-tuned pick (BertClassifier / BertRegressor) exports like any other pick.

It is exported as its fine-tuned encoder, its pooling and its linear head; the runtime's
predictions equal the estimator's, alone or as the one step of a pipeline (the probe's
``best_pipeline.joblib`` of a fine-tuned pick).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from bertfeat import BertClassifier, BertRegressor
from bertfeat.deploy import runtime
from bertfeat.deploy.export import export_pipeline

TEXTS = ["good film", "awful plot", "what a great story", "boring acting", "i love it",
         "not very fun", "the music was long", "a short answer"] * 2
CASES = {
    "binary-mean_max": (BertClassifier, "mean_max", ["pos", "neg"] * 8),
    "three-classes-cls": (BertClassifier, "cls", ["a", "b", "c", "a"] * 4),
    "regression-mean": (BertRegressor, "mean", [1.0, 5.0, 2.0, 7.0, 3.0, 9.0, 4.0, 0.0] * 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_fine_tuned_estimator_exports_with_its_predictions(tiny_model, tmp_path, case,
                                                            wrapped):
    cls, pooling, y = CASES[case]
    estimator = cls(model=tiny_model, pooling=pooling, precision="fp32", epochs=1,
                    batch_size=8, random_state=0, show_progress=False).fit(TEXTS, y)
    pipe = make_pipeline(estimator) if wrapped else estimator
    report = export_pipeline(pipe, tmp_path / "export", check_texts=TEXTS, verbose=False)
    assert report.predictions_agree == (len(TEXTS), len(TEXTS))
    loaded = runtime.load(tmp_path / "export")
    got, want = loaded.predict(TEXTS), estimator.predict(TEXTS)
    if cls is BertClassifier:
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(loaded.predict_proba(TEXTS), estimator.predict_proba(TEXTS),
                                   atol=1e-5)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # nothing of the temporary encoder folder is needed after the export
    assert not any(p.name.startswith("bertfeat-finetuned-") for p in tmp_path.iterdir())
