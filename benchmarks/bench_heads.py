"""Heads against the encoder (issue 26): the demo's heads seconds vs one fp32 encode.

The shipped demo (``bertfeat probe`` with no data: a stratified 1,500-text subset of
banking77, 77 classes, seed 0) is run with the CLI's options, and in the same process
one fp32 all-layer encode of the same texts is timed (``BertFeaturizer(layers="all",
precision="fp32", cache=False).fit_transform``, after one warm-up call on a few texts).
"Heads" is the sum of the stage times that exclude encoding (screen, refine, union,
baselines, chunk), as the demo prints it; ``cpu_s`` gives each stage's CPU seconds (every
thread of the process), so CPU / wall is the stage's parallel efficiency. The probe
reads its vectors from the default store when they are there (the heads do not depend
on it).

Run:  python benchmarks/bench_heads.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_name, loadavg  # noqa: E402

HEAD_STAGES = ("screen", "refine", "union", "baselines", "chunk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="append the record to this file")
    parser.add_argument("--encode-first", action="store_true",
                        help="time the encode before the probe (default: after)")
    args = parser.parse_args()

    from bertfeat import BertFeaturizer
    from bertfeat.cli.common import DEMO_DATASET, DEMO_LIMIT, _stratified_subset
    from bertfeat.io import datasets
    from bertfeat.probe import probe

    df = datasets.load_dataset(DEMO_DATASET)
    texts, y, _ = _stratified_subset(df["text"].reset_index(drop=True),
                                     df["label"].reset_index(drop=True), DEMO_LIMIT, 0,
                                     min_per_class=5)
    texts = texts.tolist()
    record: dict = {"cpu": cpu_name(), "load_before": loadavg(), "texts": len(texts)}

    def encode() -> float:
        feat = BertFeaturizer(layers="all", precision="fp32", cache=False,
                              show_progress=False)
        feat.fit_transform(texts[:16])  # loads the model: not part of the pass
        t0 = time.perf_counter()
        feat.fit_transform(texts)
        return time.perf_counter() - t0

    import bertfeat.probe.core as core

    cpu: dict[str, float] = {}
    run_stage = core._run_stage

    def timed_stage(ctx, stage, families):  # CPU seconds of every thread, per stage
        t0 = time.process_time()
        run_stage(ctx, stage, families)
        cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - t0

    core._run_stage = timed_stage
    if args.encode_first:
        record["encode_fp32_s"] = encode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        result = probe(texts, y, verbose=False, n_jobs=-1)  # as `bertfeat probe` (--n-jobs -1)
        record["probe_s"] = time.perf_counter() - t0
    if not args.encode_first:
        record["encode_fp32_s"] = encode()
    t = result.timings
    record["timings"] = {k: round(float(v), 2) for k, v in t.items()}
    record["heads_s"] = sum(t.get(k, 0.0) for k in HEAD_STAGES)
    record["cpu_s"] = {k: round(v, 2) for k, v in cpu.items() if k in HEAD_STAGES}
    record["heads_cpu_s"] = sum(record["cpu_s"].values())
    record["ratio"] = record["heads_s"] / record["encode_fp32_s"]
    record["pick"] = result.recommendation.pick
    record["pick_score"] = float(result.table.set_index("candidate").loc[
        result.recommendation.pick, "mean_score"])
    record["candidates"] = len(result.table)
    record["load_after"] = loadavg()
    print(json.dumps(record, indent=1))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
