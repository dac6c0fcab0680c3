"""What an export says: :class:`ExportError` when it refuses, :class:`ExportReport` when done.

Both are re-exported by :mod:`bertfeat.deploy.export`, where they are documented to live;
they sit here so that every stage of the export (graph, head, TF-IDF, checks) can raise
the one error without importing the orchestration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ExportError", "ExportReport", "describe_checks"]


class ExportError(ValueError):
    """The pipeline (or one of its steps) cannot be exported; the message says which."""


@dataclass
class ExportReport:
    """What :func:`~bertfeat.deploy.export.export_pipeline` wrote and how faithful the
    exported graph is.

    Attributes
    ----------
    directory : Path
        The folder written.
    precision : str or None
        ``"fp32"`` or ``"int8"``; None for a TF-IDF pipeline (no encoder).
    cosine_mean, cosine_min : float or None
        Cosine between the exported encoder's features and the torch featurizer's (fp32)
        on the check texts; None when there is no encoder.
    n_check_texts : int
        How many texts were checked.
    files : dict of str to int
        File name -> size in bytes.
    tfidf_max_error : float or None
        Largest absolute difference between the runtime's TF-IDF values and scikit-learn's
        on the check texts and on texts made of every vocabulary term (at most
        :data:`~bertfeat.deploy.tfidf.TFIDF_TOLERANCE`, else the export is refused);
        None without TF-IDF.
    n_tfidf_texts : int
        How many texts the TF-IDF block was compared on.
    predictions_agree : tuple of (int, int) or None
        ``(same, checked)``: check texts where the runtime's ``predict`` equals the
        pipeline's (classifiers), or is within 1e-4 relative (regressors); None without
        a predicting head.
    """

    directory: Path
    precision: str | None
    cosine_mean: float | None
    cosine_min: float | None
    n_check_texts: int
    files: dict[str, int] = field(default_factory=dict)
    tfidf_max_error: float | None = None
    n_tfidf_texts: int = 0
    predictions_agree: tuple[int, int] | None = None

    @property
    def size_bytes(self) -> int:
        """Total size of the folder."""
        return sum(self.files.values())



def describe_checks(report: ExportReport) -> str:
    """The TF-IDF and agreement checks of ``report`` as the tail of the printed summary.

    Parameters
    ----------
    report : ExportReport

    Returns
    -------
    str
        ``""`` when neither check ran, else ``"; ..."`` clauses.
    """
    out = ""
    if report.tfidf_max_error is not None:
        out += (f"; TF-IDF max difference to scikit-learn {report.tfidf_max_error:.1e} on "
                f"{report.n_tfidf_texts} texts")
    if report.predictions_agree is not None:
        same, n = report.predictions_agree
        out += f"; predictions agree with the pipeline on {same}/{n} texts"
    return out

