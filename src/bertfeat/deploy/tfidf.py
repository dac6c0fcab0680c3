"""The TF-IDF block of an export, both ways: a fitted ``TfidfVectorizer`` as plain JSON
(``tfidf.json``, written by the export) and :class:`TfidfBlock`, which computes its rows
with numpy in the runtime.

The runtime computes TF-IDF rows with the same regular expression, n-grams, idf and norm
as scikit-learn (Python's ``re``, as scikit-learn's analyzer): skl2onnx's
``TfidfVectorizer`` converter is not used, because its ONNX ``Tokenizer`` operator splits
with RE2, not with Python's ``re``, and so does not reproduce every token of
``token_pattern``. :func:`check_tfidf` compares both on the check texts and on texts made
of every vocabulary term before anything is written.

scikit-learn is imported only inside the export-side functions: the runtime imports this
module without it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np

from .report import ExportError

__all__ = ["TFIDF_TOLERANCE", "TfidfBlock", "check_tfidf", "tfidf_spec"]

#: largest difference allowed between the runtime's TF-IDF values (float64) and
#: scikit-learn's (float64 by default, float32 with ``dtype=np.float32``): rounding only;
#: a term tokenised differently changes a value by orders of magnitude more
TFIDF_TOLERANCE = 1e-6
#: vocabulary terms per check text made of vocabulary terms (TF-IDF fidelity check)
_TERMS_PER_TEXT = 64


class TfidfBlock:
    """A fitted ``TfidfVectorizer`` (analyzer='word') and TextUnion's block scaling.

    Parameters
    ----------
    spec : dict
        The JSON of :func:`tfidf_spec` (the export's ``tfidf.json``).
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.vocab = spec["vocabulary"]
        self.idf = None if spec["idf"] is None else np.asarray(spec["idf"], dtype=np.float64)
        self.pattern = re.compile(spec["token_pattern"])
        self.stop = frozenset(spec["stop_words"] or ())
        if spec["scaler_mean"] is not None:
            self.mean = np.asarray(spec["scaler_mean"], dtype=np.float64)
            self.scale = np.asarray(spec["scaler_scale"], dtype=np.float64)

    def _terms(self, text: str) -> list[str]:
        s = self.spec
        if s["lowercase"]:
            text = text.lower()
        if s["strip_accents"] == "unicode":
            text = "".join(c for c in unicodedata.normalize("NFKD", text)
                           if not unicodedata.combining(c))
        elif s["strip_accents"] == "ascii":
            text = unicodedata.normalize("NFKD", text).encode("ASCII", "ignore").decode("ASCII")
        tokens = [t for t in self.pattern.findall(text) if t not in self.stop]
        low, high = s["ngram_range"]
        if high == 1:
            return tokens
        grams = list(tokens) if low == 1 else []
        for n in range(max(low, 2), high + 1):
            grams += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        return grams

    def lexical(self, texts: list[str]) -> np.ndarray:
        """The TF-IDF rows of ``texts`` as a dense float64 array.

        Parameters
        ----------
        texts : list of str

        Returns
        -------
        ndarray of shape (n_texts, n_terms), float64
        """
        s = self.spec
        out = np.zeros((len(texts), len(self.vocab)), dtype=np.float64)
        for row, text in enumerate(texts):
            for term in self._terms(text):
                col = self.vocab.get(term)
                if col is not None:
                    out[row, col] += 1.0
        if s["binary"]:
            np.minimum(out, 1.0, out=out)
        if s["sublinear_tf"]:
            nonzero = out > 0
            out[nonzero] = np.log(out[nonzero]) + 1.0
        if self.idf is not None:
            out *= self.idf
        if s["norm"] == "l2":
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-300)
        elif s["norm"] == "l1":
            out /= np.maximum(np.abs(out).sum(axis=1, keepdims=True), 1e-300)
        return out

    def join(self, texts: list[str], dense: np.ndarray) -> np.ndarray:
        """TextUnion's output: weighted TF-IDF block, then the scaled BERT block.

        Parameters
        ----------
        texts : list of str
        dense : ndarray of shape (n_texts, n_bert_features)
            The featurizer's output for ``texts``.

        Returns
        -------
        ndarray of shape (n_texts, n_terms + n_bert_features), float32
        """
        s = self.spec
        if s["scaler_mean"] is not None:
            block = (dense - self.mean) / self.scale / np.sqrt(dense.shape[1])
        else:
            block = dense / np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)
        lexical = self.lexical(texts).astype(np.float32) * np.float32(s["tfidf_weight"])
        block = block.astype(np.float32) * np.float32(s["bert_weight"])
        return np.hstack([lexical, block])


def tfidf_spec(tfidf: Any, union: Any = None) -> dict[str, Any]:
    """A fitted TfidfVectorizer (TextUnion's block, or a pipeline's first step) as plain
    JSON, for the numpy runtime.

    Parameters
    ----------
    tfidf : TfidfVectorizer
        Fitted, ``analyzer="word"`` with the default tokenizer and preprocessor.
    union : TextUnion, optional
        The union ``tfidf`` belongs to (its weights and the scaler of its BERT block).

    Returns
    -------
    dict

    Raises
    ------
    ExportError
        A vectorizer the runtime cannot reproduce.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    where = "TextUnion's TfidfVectorizer" if union is not None else "TfidfVectorizer"
    if type(tfidf) is not TfidfVectorizer:
        raise ExportError(f"TextUnion(tfidf={type(tfidf).__name__}) cannot be exported: only "
                          "a TfidfVectorizer block is")
    if not hasattr(tfidf, "vocabulary_"):
        raise ExportError(f"the {where} is not fitted; fit the pipeline before exporting")
    problems = [f"{name}={getattr(tfidf, name)!r}" for name, ok in (
        ("analyzer", tfidf.analyzer == "word"), ("tokenizer", tfidf.tokenizer is None),
        ("preprocessor", tfidf.preprocessor is None),
        ("strip_accents", tfidf.strip_accents in (None, "ascii", "unicode")),
        ("norm", tfidf.norm in (None, "l1", "l2")), ("use_idf", True)) if not ok]
    if problems:
        raise ExportError(f"{where}({', '.join(problems)}) cannot be "
                          "exported: the runtime implements analyzer='word' with the "
                          "default tokenizer and preprocessor")
    stop = tfidf.get_stop_words()
    vocab = {str(k): int(v) for k, v in tfidf.vocabulary_.items()}
    scaler = None if union is None else union.scaler_
    return {
        "vocabulary": vocab, "idf": tfidf.idf_.tolist() if tfidf.use_idf else None,
        "lowercase": bool(tfidf.lowercase), "token_pattern": tfidf.token_pattern,
        "ngram_range": list(tfidf.ngram_range), "stop_words": sorted(stop) if stop else None,
        "strip_accents": tfidf.strip_accents, "sublinear_tf": bool(tfidf.sublinear_tf),
        "binary": bool(tfidf.binary), "norm": tfidf.norm,
        "tfidf_weight": None if union is None else float(union.tfidf_weight),
        "bert_weight": None if union is None else float(union.bert_weight),
        "scaler_mean": None if scaler is None else scaler.mean_.tolist(),
        "scaler_scale": None if scaler is None else scaler.scale_.tolist(),
    }


def _tfidf_texts(tfidf, texts: list[str]) -> list[str]:
    """``texts`` and texts made of every vocabulary term (so each term is tokenised)."""
    terms = sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get)
    return list(texts) + [" ".join(terms[i:i + _TERMS_PER_TEXT])
                          for i in range(0, len(terms), _TERMS_PER_TEXT)]


def check_tfidf(spec: dict[str, Any], tfidf: Any, texts: list[str]) -> tuple[float, int]:
    """Compare the runtime's TF-IDF rows with scikit-learn's.

    Parameters
    ----------
    spec : dict
        :func:`tfidf_spec` of ``tfidf``.
    tfidf : TfidfVectorizer
        The fitted vectorizer.
    texts : list of str
        Check texts; texts made of every vocabulary term are added.

    Returns
    -------
    (float, int)
        The largest difference and the number of texts compared.

    Raises
    ------
    ExportError
        Naming the first text where the difference exceeds :data:`TFIDF_TOLERANCE`.
    """
    lexical = TfidfBlock(spec)
    checked = _tfidf_texts(tfidf, texts)
    rows = max(1, 2 ** 22 // max(len(spec["vocabulary"]), 1))  # dense blocks of ~32 MB
    worst = 0.0
    for start in range(0, len(checked), rows):
        part = checked[start:start + rows]
        want = tfidf.transform(part).toarray()
        error = np.abs(lexical.lexical(part) - want).max(axis=1) if len(part) else []
        bad = np.flatnonzero(np.asarray(error) > TFIDF_TOLERANCE)
        if len(bad):
            i = int(bad[0])
            raise ExportError(
                f"the exported TF-IDF differs from scikit-learn's TfidfVectorizer on check "
                f"text {start + i} ({part[i][:60]!r}): {float(error[i]):.3g} > "
                f"{TFIDF_TOLERANCE:g}, so the runtime would not reproduce the pipeline; "
                f"runtime terms {lexical._terms(part[i])[:8]}, scikit-learn terms "
                f"{tfidf.build_analyzer()(part[i])[:8]}")
        worst = max(worst, float(np.max(error, initial=0.0)))
    return worst, len(checked)
