"""How far a text's vector moves when the texts sharing its batch change.

Encodes the same texts with small batches (``batch_size=4``), with the default token-budget
batches, and one text at a time, without a store, for each precision asked; prints per
precision the largest element-wise difference of a row relative to the row's largest
magnitude and the smallest cosine, against the default batching. These are the numbers
behind the bounds in ``bertfeat.equality.BOUNDS``.

    python benchmarks/bench_batch_equality.py [--texts 300] [--precisions fp32 bf16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from _common import cores, cpu_flags, cpu_name, loadavg

from bertfeat import BertFeaturizer
from bertfeat.equality import bound_for

HERE = Path(__file__).resolve().parent


def row_stats(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    scale = np.abs(b).max(axis=1)
    rel = (np.abs(a - b).max(axis=1) / scale).max()
    cos = ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min()
    return float(rel), float(cos)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--model", default="default")
    args = parser.parse_args(argv)
    import torch

    data = pd.read_csv(HERE.parent / "src" / "bertfeat" / "data" / "sms_spam.csv")
    texts = data["text"].sample(args.texts, random_state=0).tolist()
    print(f"CPU: {cpu_name()} ({cores()} cores; {cpu_flags()}); load {loadavg():.1f}")
    print(f"torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"threads {torch.get_num_threads()}; {len(texts)} SMS texts, layers='all', mean")
    print(f"{'precision':<10} {'batching':<14} {'max row-rel diff':>17} {'min cosine':>12} "
          f"{'bound rel':>10} {'bound cos':>10}")
    for precision in args.precisions:
        def run(precision=precision, **kw):
            return BertFeaturizer(model=args.model, layers="all", pooling="mean",
                                  precision=precision, cache=False, **kw
                                  ).fit(texts).transform(texts)
        reference = run()
        bound = bound_for(precision)
        for name, kw in (("batch_size=4", {"batch_size": 4}),
                         ("batch_size=1", {"batch_size": 1})):
            rel, cos = row_stats(run(**kw), reference)
            print(f"{precision:<10} {name:<14} {rel:>17.3g} {cos:>12.8f} "
                  f"{bound.rel:>10g} {bound.min_cosine:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
