"""Candidate families: each module here turns the shared encoded data and folds into
candidates of one kind.

The interface (:class:`Family`) is one method (and an optional hook,
:meth:`Family.before_encode`, for encoder work that must precede the main pass)::

    class MyFamily(Family):
        name = "mine"        # unique; how the registry knows it
        timing = "mine"      # key of ProbeResult.timings its heads' time adds to

        def candidates(self, ctx: ProbeContext) -> Iterable[Candidate]:
            ...              # read ctx (texts, y, folds, ctx.bert, ctx.ranked(...)),
                             # yield Candidate objects; ctx.options holds probe()'s
                             # arguments, ctx.encode() runs another encoder pass

:func:`~bertfeat.probe.probe` runs the families in :data:`FAMILIES` order, scores what
each yields on the same folds (consecutive families with the same ``timing`` form one
stage) and ranks every row together. A new family is a new module in this package that
defines ``FAMILY = MyFamily()``, plus its module name in :data:`FAMILIES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..candidates import Candidate
    from ..context import ProbeContext

__all__ = ["Family", "FAMILIES", "registered"]

#: the families, in the order they run (later ones may rank what earlier ones scored)
FAMILIES = (
    "layers",    # every hidden state x pooling, screening head          (stage screen)
    "combos",    # combinations of the last layers x pooling             (stage screen)
    "refine",    # the other heads on the best screened feature sets     (stage refine)
    "chunked",   # the best feature sets from a chunked encoder pass     (stage chunk)
    "union",     # TF-IDF ⊕ the best feature set                         (stage union)
    "control",   # the same layers of a random-weights copy              (stage control)
    "tfidf",     # the TF-IDF baseline                                   (stage baseline)
    "finetune",  # the encoder fine-tuned on each training fold (opt-in)  (stage finetune)
)


class Family:
    """A kind of candidate: turns a :class:`~bertfeat.probe.context.ProbeContext` into
    :class:`~bertfeat.probe.candidates.Candidate` objects.

    Attributes
    ----------
    name : str
        Unique name of the family.
    timing : str
        Key of ``ProbeResult.timings`` that the time of its candidates adds to (the time
        of its encoder passes goes to the key given to ``ctx.encode``).
    """

    name: str = ""
    timing: str = ""

    def candidates(self, ctx: ProbeContext) -> Iterable[Candidate]:
        """The candidates of this family (none when its option is off).

        Parameters
        ----------
        ctx : ProbeContext
            Shared data of the run; ``ctx.scored`` holds every row scored before this
            family ran.

        Returns
        -------
        iterable of Candidate
        """
        raise NotImplementedError

    def before_encode(self, ctx: ProbeContext) -> None:
        """Encoder work to do before the main pass (default: none).

        A family whose own pass contains the main one runs it here, so that the main pass
        reads its vectors from the store instead of encoding them: the chunked family
        encodes every window once, and the first window of a text is its truncated
        encoding.

        Parameters
        ----------
        ctx : ProbeContext
            Shared data of the run; ``ctx.bert`` is not set yet.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} family {self.name!r}>"


def registered() -> list[Family]:
    """The families of :data:`FAMILIES`, in order (each module's ``FAMILY``)."""
    return [importlib.import_module(f"{__name__}.{name}").FAMILY for name in FAMILIES]
