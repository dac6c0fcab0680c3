"""Word-level features on UD English EWT: UPOS accuracy per layer x sub-word pooling.

Run from the repository root:

    .venv/bin/python benchmarks/bench_words.py            # full run: dev -> test
    .venv/bin/python benchmarks/bench_words.py --quick    # smoke run (300 / 300 sentences)

Protocol (``../shared/data/README.md``): train on UD EWT dev, test on UD EWT test, bundled
model (all-MiniLM-L6-v2). It measures, in one run:

* encoding speed (words/s) and store bytes per word of :class:`bertfeat.BertWordFeaturizer`
  with every layer stored (one encoder pass for the whole grid, checked by the store's
  counters);
* test UPOS accuracy of StandardScaler + LogisticRegression on every layer x sub-word
  pooling, and on a few layer combinations;
* the most-frequent-tag-per-word baseline, the random-weights control (same architecture,
  random weights, same layers and poolings);
* ``probe_words`` on dev (its recommendation, scored on test) and its wall time.

It prints markdown and, with ``--readme``, replaces the "Word features" section of
benchmarks/README.md and writes the per-layer plot to docs/words_layers.png.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from _common import cores, cpu_flags, cpu_name, loadavg

ROOT = Path(__file__).resolve().parents[1]
UD = ROOT.parent / "shared" / "data" / "ud_ewt"
SECTION = "## Word features (UD EWT part-of-speech)"
END_MARK = "<!-- end of word features -->"
POOLINGS = ("first", "last", "mean", "max", "first_last")


def load(limit: int | None):
    from bertfeat.conll import read_conll

    dev = read_conll(UD / "en_ewt-ud-dev.conllu", "upos")
    test = read_conll(UD / "en_ewt-ud-test.conllu", "upos")
    if limit:
        dev = (dev[0][:limit], dev[1][:limit])
        test = (test[0][:limit], test[1][:limit])
    return dev, test


def most_frequent_tag(train, test) -> float:
    per_word: dict[str, Counter] = {}
    overall = Counter()
    for words, tags in zip(*train):
        for w, t in zip(words, tags):
            per_word.setdefault(w, Counter())[t] += 1
            overall[t] += 1
    fallback = overall.most_common(1)[0][0]
    right = total = 0
    for words, tags in zip(*test):
        for w, t in zip(words, tags):
            guess = per_word[w].most_common(1)[0][0] if w in per_word else fallback
            right += guess == t
            total += 1
    return right / total


def head(kind: str = "ridge"):
    """The word probe's default heads: ridge (screens every feature set), logistic
    regression (refines), both on standardised features."""
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "ridge":
        return make_pipeline(StandardScaler(), RidgeClassifier(alpha=100.0))
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))


def grid(model: str, store: str, train, test, layers, poolings, combos=(), kind="ridge"):
    """Test accuracy of every (layers, pooling); the encoder runs once (checked)."""
    from sklearn.metrics import accuracy_score

    from bertfeat import BertWordFeaturizer
    from bertfeat.words import flatten_tags

    y_train, y_test = flatten_tags(train[1]), flatten_tags(test[1])
    rows = []
    base = BertWordFeaturizer(model=model, layers="all", cache=store).fit(train[0])
    fp = base.fingerprint_
    before = base._rt_store.word_stats(fp)["sentences_encoded"]
    t0 = time.perf_counter()
    base.transform(train[0])
    base.transform(test[0])
    encode_s = time.perf_counter() - t0
    encoded = base._rt_store.word_stats(fp)["sentences_encoded"] - before
    print(f"  encoded {encoded} sentences in {encode_s:.0f} s", flush=True)
    specs = [([layer], pooling, "concat") for layer in layers for pooling in poolings]
    specs += list(combos)
    for layer_list, pooling, combine in specs:
        feat = BertWordFeaturizer(model=model, layers=layer_list, subword_pooling=pooling,
                                  layer_combine=combine, cache=store).fit(train[0])
        x_train, x_test = feat.transform(train[0]), feat.transform(test[0])
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = head(kind).fit(x_train, y_train)
        acc = accuracy_score(y_test, clf.predict(x_test))
        rows.append({"layers": layer_list, "pooling": pooling, "combine": combine,
                     "head": kind, "accuracy": acc, "fit_s": time.perf_counter() - t1})
        print(f"  {layer_list} {pooling} {combine}: {acc:.4f} "
              f"({rows[-1]['fit_s']:.0f} s)", flush=True)
    again = base._rt_store.word_stats(fp)["sentences_encoded"] - before
    return rows, encode_s, encoded, again, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--no-probe", action="store_true")
    parser.add_argument("--no-random", action="store_true")
    args = parser.parse_args()

    import sklearn
    import torch
    import transformers

    import bertfeat
    from bertfeat import models
    from bertfeat.store import FeatureStore

    limit = 300 if args.quick else None
    train, test = load(limit)
    n_train = sum(map(len, train[0]))
    n_test = sum(map(len, test[0]))
    facts = (f"CPU: {cpu_name()} ({cores()} cores; {cpu_flags()}); Python "
             f"{platform.python_version()}, torch {torch.__version__}, transformers "
             f"{transformers.__version__}, scikit-learn {sklearn.__version__}, bertfeat "
             f"{bertfeat.__version__}; load average at start {loadavg():.1f}")
    print(facts, flush=True)
    print(f"train (dev): {len(train[0])} sentences / {n_train} words; test: "
          f"{len(test[0])} / {n_test}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-words-"))
    store_dir = str(work / "store")
    try:
        info = models.resolve_model("default")
        layers = list(range(info.n_layers + 1))
        combos = [([2, 3], "first", "concat"), ([1, 2, 3, 4], "first", "concat"),
                  ([2, 3], "first_last", "concat"), ([1, 2, 3, 4], "first_last", "concat"),
                  (layers, "first", "mean")]
        volume0 = FeatureStore(store_dir).cache.volume()
        rows, encode_s, encoded, again, base = grid("default", store_dir, train, test, layers,
                                                    POOLINGS, combos)
        if not args.quick:  # logistic regression where the reference recipe uses it
            lr_rows, *_ = grid("default", store_dir, train, test, [], (),
                               [([3], "first", "concat"), ([1, 2, 3, 4], "first_last",
                                                           "concat")], kind="logreg")
            rows += lr_rows
        bytes_word = (FeatureStore(store_dir).cache.volume() - volume0) / (n_train + n_test)
        baseline = most_frequent_tag(train, test)
        random_rows = []
        if not args.no_random:
            from bertfeat.probe import random_init_model

            rnd = random_init_model("default", seed=0, directory=work / "random")
            random_rows, random_s, *_ = grid(str(rnd), store_dir, train, test, layers,
                                             ("first",))
            print(f"  random control encoded in {random_s:.0f} s", flush=True)
        probe_line = ""
        if not args.no_probe:
            probe_line = run_probe(train, test, store_dir)
        report = render(rows, random_rows, baseline, encode_s, encoded, again, bytes_word,
                        n_train + n_test, facts, probe_line, args)
        print(report)
        if args.readme:
            write_readme(report)
            plot(rows, random_rows, baseline, ROOT / "docs" / "words_layers.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_probe(train, test, store_dir: str) -> str:
    try:
        from bertfeat.probe import probe_words
    except ImportError:
        from bertfeat.wordprobe import probe_words
    try:
        t0 = time.perf_counter()
        result = probe_words(train[0], train[1], cache=store_dir, cv=3, refine_top=1)
        wall = time.perf_counter() - t0
        print(result.summary(), flush=True)
        result.plot(ROOT / "docs" / "words_probe.png", title="probe_words on UD EWT dev "
                    "(all-MiniLM-L6-v2, 3 sentence-grouped folds)")
        t1 = time.perf_counter()
        acc = result.best_estimator.score(test[0], test[1])  # fitted on all of dev
    except Exception as exc:  # the grid above is still worth reporting
        import traceback

        traceback.print_exc()
        return f"probe_words failed: {type(exc).__name__}: {exc}"
    best = result.best
    name = best["description"] if "description" in best else (
        f"{best['layer']} · {best['pooling']} · {best['head']}")
    return (f"probe_words on dev (3 sentence-grouped folds): {wall:.0f} s wall; recommended "
            f"`{name}` (CV {best['mean_score']:.4f}) -> test UPOS accuracy **{acc:.4f}** "
            f"(test predictions {time.perf_counter() - t1:.0f} s)")


def render(rows, random_rows, baseline, encode_s, encoded, again, bytes_word, n_words, facts,
           probe_line, args) -> str:
    singles = [r for r in rows if len(r["layers"]) == 1 and r["head"] == "ridge"]
    layers = sorted({r["layers"][0] for r in singles})
    poolings = [p for p in POOLINGS if any(r["pooling"] == p for r in singles)]
    acc = {(r["layers"][0], r["pooling"]): r["accuracy"] for r in singles}
    rnd = {r["layers"][0]: r["accuracy"] for r in random_rows}
    lines = [SECTION, "",
             f"`python benchmarks/bench_words.py{' --quick' if args.quick else ''}`, "
             f"{time.strftime('%Y-%m-%d %H:%M')} on the shared development machine. {facts}.",
             "",
             "UD English EWT, train on dev, test on test; bundled all-MiniLM-L6-v2 (6 layers, "
             "384 wide, precision auto); one row per word; head: the probe's screening head "
             "(StandardScaler + RidgeClassifier(alpha=100)) unless the table says logreg "
             "(StandardScaler + LogisticRegression(C=0.1, max_iter=300)). Test UPOS "
             "accuracy:", "",
             "| layer | " + " | ".join(poolings) + (" | random weights (first) |" if rnd else " |"),
             "|---|" + "---:|" * (len(poolings) + (1 if rnd else 0))]
    for layer in layers:
        cells = [f"{acc[(layer, p)]:.4f}" for p in poolings]
        if rnd:
            cells.append(f"{rnd.get(layer, float('nan')):.4f}")
        lines.append(f"| L{layer} | " + " | ".join(cells) + " |")
    singles = [r for r in singles if r["head"] == "ridge"]
    lines += ["", "Layer combinations and the logistic-regression head:", "",
              "| layers | pooling | combine | head | accuracy | head fit s |",
              "|---|---|---|---|---:|---:|"]
    for r in rows:
        if r not in singles:
            lines.append(f"| {'+'.join(map(str, r['layers']))} | {r['pooling']} | "
                         f"{r['combine']} | {r['head']} | {r['accuracy']:.4f} | "
                         f"{r['fit_s']:.0f} |")
    best = max(rows, key=lambda r: r["accuracy"])
    fit_s = np.median([r["fit_s"] for r in rows])
    lines += ["",
              f"- most frequent tag per word (dev counts; unseen words: the most frequent "
              f"tag): **{baseline:.4f}**",
              f"- best: layers {best['layers']} {best['pooling']} ({best['combine']}, "
              f"{best['head']}) **{best['accuracy']:.4f}**",
              f"- encoding: {n_words} words in {encode_s:.1f} s = "
              f"**{n_words / encode_s:.0f} words/s** (every layer stored); sentences "
              f"encoded {encoded} for the whole grid of {len(rows)} feature sets "
              f"(after it: {again})",
              f"- store: **{bytes_word:.0f} bytes per word** (float16 piece vectors, "
              f"{len(layers)} hidden states x 384, index rows and SQLite overhead included)",
              f"- median head fit: {fit_s:.0f} s"]
    if probe_line:
        lines.append(f"- {probe_line}")
    lines += ["", "![UPOS accuracy per layer](../docs/words_layers.png)", "", END_MARK, ""]
    return "\n".join(lines)


def write_readme(section: str, path: Path = ROOT / "benchmarks" / "README.md") -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if SECTION in text:
        start = text.index(SECTION)
        end = text.index(END_MARK, start) + len(END_MARK) if END_MARK in text[start:] else len(text)
        text = text[:start] + section.rstrip("\n") + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def plot(rows, random_rows, baseline, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for pooling in POOLINGS:
        pts = sorted((r["layers"][0], r["accuracy"]) for r in rows
                     if len(r["layers"]) == 1 and r["pooling"] == pooling
                     and r["head"] == "ridge")
        if pts:
            ax.plot(*zip(*pts), marker="o", label=pooling)
    if random_rows:
        pts = sorted((r["layers"][0], r["accuracy"]) for r in random_rows)
        ax.plot(*zip(*pts), linestyle=":", color="grey", label="random weights (first)")
    ax.axhline(baseline, color="black", linestyle="--", linewidth=1,
               label="most frequent tag")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("UPOS accuracy (UD EWT test)")
    ax.set_title("all-MiniLM-L6-v2, UD EWT dev -> test, ridge head")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
