"""``WordTagger``: a tagger over sentences, word features from a featurizer and any
scikit-learn head (default :class:`~bertfeat.BertWordFeaturizer` + ``LogisticRegression``).

``fit(sentences, tags)`` and ``predict(sentences)`` take and return per-sentence tag lists;
in between, every word is one row of features and one sample of the head.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..io.inputs import to_sentences
from ..io.tags import flatten_tags, once, tag_lists, unflatten_tags
from ..stats.tagscore import entity_f1, is_bio, token_accuracy
from .words import BertWordFeaturizer

__all__ = ["WordTagger"]


class WordTagger(BaseEstimator):
    """A tagger over sentences: word features from a featurizer, any scikit-learn head.

    ``fit(sentences, tags)`` and ``predict(sentences)`` take and return lists of per-word
    tag lists; in between, every word is one row of ``featurizer`` features and one
    sample of ``classifier``.

    Parameters
    ----------
    featurizer : estimator, default=None
        Turns sentences into one row per word; default ``BertWordFeaturizer()``.
    classifier : estimator, default=None
        Any scikit-learn classifier (LogisticRegression, LinearSVC, MLPClassifier, a
        Pipeline ...); default ``LogisticRegression(max_iter=1000)``.
    scoring : {"auto", "accuracy", "entity_f1"}, default="auto"
        What :meth:`score` returns: token accuracy, or entity-level F1 of BIO/IOB2 tags
        (micro-averaged, as seqeval's default mode). ``"auto"``: entity F1 when every
        true tag is ``O``, ``B-X`` or ``I-X``, else accuracy.

    Attributes
    ----------
    featurizer_ : estimator
        The fitted clone of ``featurizer``.
    classifier_ : estimator
        The fitted clone of ``classifier``.
    classes_ : ndarray
        The tags seen in ``fit``.

    Examples
    --------
    >>> from bertfeat import BertWordFeaturizer, WordTagger
    >>> from sklearn.linear_model import LogisticRegression
    >>> tagger = WordTagger(BertWordFeaturizer(layers=3), LogisticRegression(max_iter=500))
    >>> tagger.fit([["Dogs", "bark"]], [["NOUN", "VERB"]]).predict([["Cats", "sleep"]])
    ... # doctest: +SKIP
    [['NOUN', 'VERB']]
    """

    _parameter_constraints: dict = {
        "featurizer": [HasMethods(["fit", "transform"]), None],
        "classifier": [HasMethods(["fit", "predict"]), None],
        "scoring": [StrOptions({"auto", "accuracy", "entity_f1"})],
    }

    def __init__(self, featurizer: Any = None, classifier: Any = None,
                 scoring: str = "auto") -> None:
        self.featurizer = featurizer
        self.classifier = classifier
        self.scoring = scoring

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.required = True
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any) -> WordTagger:
        """Fit the head on the words of ``X`` and their tags.

        Parameters
        ----------
        X : sequence of list of str
            Sentences, each a list of words.
        y : sequence of list
            Tags per sentence, one per word.

        Returns
        -------
        self : WordTagger
        """
        from sklearn.linear_model import LogisticRegression

        X, y = once(X), once(y)  # a generator is read once, here
        sentences = to_sentences(X, "empty")
        flat = flatten_tags(y, sentences)
        featurizer = BertWordFeaturizer() if self.featurizer is None else self.featurizer
        head = LogisticRegression(max_iter=1000) if self.classifier is None else self.classifier
        fitted_featurizer = clone(featurizer)
        features = fitted_featurizer.fit_transform(X)
        if len(features) != len(flat):
            raise ValueError(f"the featurizer returned {len(features)} rows for "
                             f"{len(flat)} words; it must give one row per word")
        classifier = clone(head).fit(features, flat)
        # the fitted state changes only now, after everything succeeded: a failed or
        # interrupted refit leaves the previous fit (or none) in place
        self.featurizer_ = fitted_featurizer
        self.classifier_ = classifier
        self.classes_ = getattr(classifier, "classes_", np.unique(flat))
        return self

    def predict(self, X: Any) -> list[list]:
        """Tags of every word.

        Parameters
        ----------
        X : sequence of list of str
            Sentences, each a list of words.

        Returns
        -------
        list of list
            One tag list per sentence, as long as the sentence.
        """
        check_is_fitted(self, "classifier_")
        X = once(X)  # a generator is read once, here
        sentences = to_sentences(X, "empty")
        features = self.featurizer_.transform(X)
        if len(features) == 0:
            return [[] for _ in sentences]
        return unflatten_tags(self.classifier_.predict(features), sentences)

    def score(self, X: Any, y: Any) -> float:
        """Token accuracy or entity-level F1 (see ``scoring``) of the predicted tags.

        Parameters
        ----------
        X : sequence of list of str
            Sentences.
        y : sequence of list
            True tags per sentence.

        Returns
        -------
        float
        """
        truth = tag_lists(y)
        predicted = self.predict(X)
        if len(predicted) != len(truth):
            raise ValueError(f"{len(predicted)} sentences but tags for {len(truth)}")
        scoring = self.scoring
        if scoring == "auto":
            scoring = "entity_f1" if is_bio(truth) else "accuracy"
        if scoring == "entity_f1":
            return entity_f1(truth, predicted)
        return token_accuracy(truth, predicted)
