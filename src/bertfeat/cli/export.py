"""``bertfeat export``: a fitted pipeline as ONNX for the torch-free runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CliError

#: the command line's entry point is bertfeat.cli.main; this module exports nothing else
__all__: list[str] = []


def _cmd_export(args: argparse.Namespace) -> int:
    import joblib

    from ..deploy.export import export_pipeline

    if not Path(args.pipeline).is_file():
        raise CliError(f"{args.pipeline}: no such file")
    try:
        pipeline = joblib.load(args.pipeline)  # the user's own fitted pipeline (a pickle)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the file's fault
        raise CliError(f"{args.pipeline} cannot be loaded as a fitted pipeline (a joblib "
                       f"or pickle file): {type(exc).__name__}: {exc}") from exc
    export_pipeline(pipeline, args.outdir, precision=args.precision, overwrite=args.overwrite)
    print(f"load it without torch: bertfeat.runtime.load({str(args.outdir)!r})")
    return 0
