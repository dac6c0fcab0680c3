"""The probe's up-front encoding estimate against the time the pass then takes (issue 26).

Runs the probe's main encoder pass (``bertfeat.probe.context.encode_all_layers``: every
layer, poolings cls/mean/max, an empty store) on the first N texts of a data file and
prints the announced estimate, the time the pass took after the announcement, and their
ratio (the goal: within 1.5x).

Usage (from the repository root, with ``PYTHONPATH=src`` and the venv's python)::

    python benchmarks/bench_estimate.py sst2_train.csv 6920 bf16
    python benchmarks/bench_estimate.py subj.csv 4000 fp32
    python benchmarks/bench_estimate.py spamassassin.csv.gz 600 bf16 --chunk
"""

from __future__ import annotations

import argparse
import csv
import gzip
import tempfile
import time
import warnings
from pathlib import Path

from _common import cpu_flags, cpu_name, loadavg

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="CSV (or .csv.gz) with a text column, in shared/data")
    parser.add_argument("n", type=int, help="first N texts")
    parser.add_argument("precision", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--chunk", action="store_true", help="long_text='chunk'")
    args = parser.parse_args()

    from bertfeat.probe.context import encode_all_layers
    from bertfeat.store import FeatureStore

    warnings.simplefilter("ignore")
    csv.field_size_limit(1 << 30)
    opener = gzip.open if args.file.endswith(".gz") else open
    with opener(DATA / args.file, "rt", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)][:args.n]
    params = {"precision": args.precision, **({"long_text": "chunk"} if args.chunk else {})}
    messages: list[str] = []
    load = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(tmp)
        t0 = time.perf_counter()
        out = encode_all_layers(texts, "default", ("cls", "mean", "max"), store, params,
                                announce=messages.append)
        total = time.perf_counter() - t0
        store.close()
    print(messages[-1])
    if out.estimate is None:
        print("no estimate (too few batches)")
        return
    estimate, actual = out.estimate
    print(f"{args.file} n={len(texts)} {args.precision}{' chunk' if args.chunk else ''}: "
          f"estimate {estimate:.1f} s, after the announcement {actual:.1f} s, ratio "
          f"{estimate / actual:.2f}; whole pass {total:.1f} s; load {load:.1f} -> "
          f"{loadavg():.1f}; {cpu_name()} ({cpu_flags()})")


if __name__ == "__main__":
    main()
