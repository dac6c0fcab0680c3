"""``bertfeat embed``: features of every row of DATA, to a file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .cache import _encoded
from .common import CliError, _featurizer_params, _read_rows, _split_list, _store

#: the command line's entry point is bertfeat.cli.main; this module exports nothing else
__all__: list[str] = []


# --------------------------------------------------------------------------------- embed
def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ..estimators.featurizer import BertFeaturizer

    output = Path(args.output)
    kind = output.suffix.lower()
    if kind not in (".parquet", ".npy"):
        raise CliError(f"-o {args.output}: the extension must be .parquet or .npy")
    keep = _split_list(args.keep_cols) if args.keep_cols else []
    df, texts, _ = _read_rows(args, keep=keep)
    n_read = len(df)
    if args.limit:
        df, texts = df.head(args.limit), texts.head(args.limit)
    rows = (f"all {n_read:,} rows of {args.data}" if len(df) == n_read else
            f"the first {len(df):,} of {n_read:,} rows of {args.data} (--limit)")
    store = _store(args) if not args.no_cache else False
    featurizer = BertFeaturizer(
        model=args.model, layers=args.layers, pooling=args.pooling,
        layer_combine=args.layer_combine, normalize=args.normalize, cache=store,
        **_featurizer_params(args))
    started = time.perf_counter()
    featurizer.fit(texts)
    before = _encoded(store, featurizer.fingerprint_)
    X = featurizer.transform(texts)
    seconds = time.perf_counter() - started
    encoded = _encoded(store, featurizer.fingerprint_) - before if store else len(texts)
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".npy":
        np.save(output, X)
        if keep:
            print("note: --keep-cols is ignored for .npy output", file=sys.stderr)
    else:
        frame = pd.DataFrame(X, columns=list(featurizer.get_feature_names_out()),
                             index=df.index)
        if keep:
            frame = pd.concat([df[keep], frame], axis=1)
        frame.reset_index(drop=True).to_parquet(output, index=False)
    print(f"wrote {X.shape[0]:,} x {X.shape[1]:,} features (model {args.model!r}, layers "
          f"{featurizer.layers_}, pooling {featurizer.pooling_!r}) to {output} in {seconds:.1f} s; "
          f"encoder ran on {encoded:,} texts; rows: {rows}")
    return 0
