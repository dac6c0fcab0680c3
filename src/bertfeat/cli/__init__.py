"""The ``bertfeat`` command line: ``probe``, ``recommend``, ``embed``, ``cache``, ``export``.

::

    bertfeat probe [DATA.csv] --text-col text --label-col label [--model M] [--cv 5]
                   [--out DIR] [--limit N] [--select RULE]
    bertfeat recommend OUTDIR --select RULE     (re-pick from a saved probe: no scoring)
    bertfeat embed DATA.csv --text-col text -o features.parquet [--layers L] [--pooling P]
    bertfeat cache info
    bertfeat cache clear [--model M]
    bertfeat export PIPELINE.joblib OUTDIR [--precision fp32|int8] [--overwrite]

Every command takes ``--cache-dir DIR`` (default: ``$BERTFEAT_CACHE_DIR`` or the per-user
cache directory). ``probe`` and ``embed`` read DATA with :mod:`bertfeat.tables`: one row per
record or a message saying why (``--quoting``, ``--on-bad-input``). Ctrl-C exits with status
130; vectors encoded so far stay in the store.
"""

from __future__ import annotations

import argparse
import os
import sys

from .common import (  # noqa: F401  (re-exported)
    DEFAULT_SELECT,
    DEMO_DATASET,
    DEMO_LIMIT,
    SELECT_RULES,
    CliError,
    _glue_negative_layers,
    _stratified_subset,
)
from .parser import _parser

__all__ = ["main"]


def _interrupted(args: argparse.Namespace) -> str:
    """What to tell a user who pressed Ctrl-C: whether the work done so far is kept."""
    if getattr(args, "command", None) not in ("probe", "embed"):
        return "bertfeat: interrupted"
    if getattr(args, "no_cache", False):
        return ("bertfeat: interrupted; nothing was kept (--no-cache): a rerun encodes "
                "every text again")
    from ..store import default_cache_dir

    where = args.cache_dir or default_cache_dir()
    return (f"bertfeat: interrupted; the vectors encoded so far are kept in the feature "
            f"store at {where}: running the same command again encodes only the rest")


def main(argv: list[str] | None = None) -> int:
    """Run the ``bertfeat`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on a usage or input error, 130 when interrupted
        (Ctrl-C; vectors already encoded stay in the store).
    """
    parser = _parser()
    args = parser.parse_args(_glue_negative_layers(sys.argv[1:] if argv is None else argv))
    if not hasattr(args, "cache_dir"):
        args.cache_dir = None
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"bertfeat: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, ImportError) as exc:
        if os.environ.get("BERTFEAT_DEBUG"):
            raise
        print(f"bertfeat: error: {exc} (set BERTFEAT_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
