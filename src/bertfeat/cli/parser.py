"""The argument parser of every command (one sub-parser each)."""

from __future__ import annotations

import argparse

from .. import __version__
from ..pooling import POOLINGS
from .cache import _cmd_cache_clear, _cmd_cache_info
from .common import (
    DEFAULT_SELECT,
    DEMO_DATASET,
    DEMO_LIMIT,
    SELECT_RULES,
    _control_texts,
    _parse_layers,
    _row_limit,
    _split_list,
)
from .embed import _cmd_embed
from .export import _cmd_export
from .probe import _cmd_probe, _cmd_recommend

#: the command line's entry point is bertfeat.cli.main; this module exports nothing else
__all__: list[str] = []


# -------------------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    from ..models import PRECISIONS
    from ..pooling import COMBINES

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help="feature store directory (default: $BERTFEAT_CACHE_DIR or the "
                             "per-user cache directory)")
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--model", default="default",
                            help="'default' (bundled all-MiniLM-L6-v2), a hub id or a "
                                 "directory")
    model_opts.add_argument("--max-length", type=int, default=None, help="token limit")
    model_opts.add_argument("--precision", default=None,
                            choices=PRECISIONS)
    model_opts.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps")
    model_opts.add_argument("--batch-size", type=int, default=None)
    model_opts.add_argument("--no-cache", action="store_true",
                            help="do not keep vectors in the feature store")
    model_opts.add_argument("--quoting", default="auto", choices=["auto", "csv", "none"],
                            help="quotes in DATA: auto (CSV quoting; for TSV too unless a "
                                 "quote is not such quoting), csv, or none (quotes are text, "
                                 "every line is a row)")
    model_opts.add_argument("--on-bad-input", default="raise", choices=["raise", "empty"],
                            help="an empty text cell: raise (an error naming the lines) or "
                                 "empty (encode it as the empty string)")

    parser = argparse.ArgumentParser(
        prog="bertfeat", parents=[common],
        description="BERT-family encoders as scikit-learn features, with a feature store.")
    parser.add_argument("--version", action="version", version=f"bertfeat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "probe", parents=[common, model_opts],
        help="find the best layer, pooling and head for a labelled dataset",
        description="Encode every text once, then cross-validate every layer x pooling "
                    "(x head for the best ones) against a random-weights control, "
                    "TF-IDF and TF-IDF ⊕ the best layer (and chunked pooling when texts "
                    "are longer than max_length), on the same folds. Without DATA it "
                    "runs on a subset of a dataset shipped with bertfeat.")
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="CSV/TSV/Parquet file with a text and a label column")
    p.add_argument("--text-col", default="text")
    p.add_argument("--words", default=None, metavar="FILE",
                   help="probe word tags instead: a CoNLL-U or two-column CoNLL/BIO file "
                        "(every layer x sub-word pooling on sentence-grouped folds)")
    p.add_argument("--tag-col", default=None,
                   help="with --words: CoNLL-U field (default upos) or column index "
                        "(default: the last column)")
    p.add_argument("--label-col", default="label")
    p.add_argument("--dataset", default=None,
                   help=f"shipped dataset to use without DATA (default {DEMO_DATASET}; "
                        "see bertfeat.datasets.DATASETS)")
    p.add_argument("--limit", type=_row_limit, default=None,
                   help="use a stratified subset of N rows (0 = all); the demo without "
                        f"DATA uses {DEMO_LIMIT}")
    p.add_argument("--cv", type=int, default=5, help="folds (default 5)")
    p.add_argument("--repeats", type=int, default=1,
                   help="repeats of the k-fold split, the same for every candidate "
                        "(default 1; 2-3 narrow the intervals, no extra encoding)")
    p.add_argument("--nested", action="store_true",
                   help="also estimate the whole selection by nested CV (about --cv times "
                        "the cross-validation work, no extra encoding)")
    p.add_argument("--test-size", type=float, default=None, metavar="FRACTION",
                   help="also hold out this share of rows: select on the rest, score the "
                        "pick once on them")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="level of the paired tests that decide the tied group (default 0.05)")
    p.add_argument("--select", default=DEFAULT_SELECT, choices=SELECT_RULES,
                   help=f"selection rule (default {DEFAULT_SELECT}): top (the top mean), "
                        "cheapest-tied (the cheapest candidate tied with it), one-se (the "
                        "cheapest within one standard error of it), stable-top (the top "
                        "mean among candidates whose fold spread is not an outlier); "
                        "`bertfeat recommend OUTDIR --select RULE` changes it later "
                        "without scoring again")
    p.add_argument("--out", default="bertfeat-probe", help="output directory for "
                   "probe.json (table, fold scores, candidate specs), data.json (the texts "
                   "used), probe.csv, probe.png, probe.txt, report.md, folds.csv and "
                   "best_pipeline.joblib")
    p.add_argument("--layers", type=_parse_layers, default="all",
                   help="'all' or comma-separated hidden states (write --layers=-3,-2,-1)")
    p.add_argument("--poolings", type=_split_list, default=["cls", "mean", "max"],
                   help="comma-separated poolings (default cls,mean,max)")
    p.add_argument("--heads", type=_split_list, default=["logreg", "svm", "mlp"],
                   help="comma-separated heads; the first screens every layer "
                        "(default logreg,svm,mlp)")
    p.add_argument("--control-texts", type=_control_texts, default="auto", metavar="N",
                   help="texts the random-weights control encodes: N (a stratified subset, "
                        "the same folds restricted to it), 'all', or 'auto' (default: a "
                        "subset taking at most 10%% of the main pass's encoder tokens)")
    p.add_argument("--refine-top", type=int, default=2,
                   help="feature sets the other heads are tried on (default 2)")
    p.add_argument("--scoring", default=None,
                   help="sklearn scoring name (default accuracy, or r2 for numbers)")
    p.add_argument("--task", default="auto", choices=["auto", "classification",
                                                      "regression"])
    p.add_argument("--no-random-control", action="store_true",
                   help="skip the random-weights control (saves one encoder pass)")
    p.add_argument("--no-tfidf", action="store_true",
                   help="skip the TF-IDF baseline (and the TF-IDF ⊕ BERT union)")
    p.add_argument("--no-union", action="store_true",
                   help="skip the TF-IDF ⊕ best-layer union candidates")
    p.add_argument("--no-chunk", action="store_true",
                   help="do not try chunked pooling when texts exceed --max-length")
    p.add_argument("--finetune", action="store_true",
                   help="also fine-tune the encoder on each training fold (BertClassifier "
                        "defaults: 3 epochs; slow on a CPU) and compare it with the best "
                        "frozen pipeline")
    p.add_argument("--n-jobs", type=int, default=-1,
                   help="threads scoring the candidates' folds (default -1: all cores; "
                   "1: one)")
    p.add_argument("--seed", type=int, default=0, help="folds, subset and init seed")
    p.add_argument("--top", type=int, default=15, help="table rows to print")
    p.add_argument("--no-save-model", action="store_true",
                   help="do not write best_pipeline.joblib")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_cmd_probe, probe_parser=p)

    r = sub.add_parser(
        "recommend", parents=[common],
        help="re-pick the best pipeline of a saved probe under another selection rule",
        description="Read the fold scores a previous `bertfeat probe --out OUTDIR` saved "
                    "(probe.json), apply a selection rule, and write the new pick's "
                    "best_pipeline.joblib (fitted on the probe's texts from the feature "
                    "store), probe.txt with its code, report.md and probe.png. Nothing is "
                    "scored again.")
    r.add_argument("outdir", metavar="OUTDIR", help="a folder written by bertfeat probe")
    r.add_argument("--select", default=DEFAULT_SELECT, choices=SELECT_RULES,
                   help=f"selection rule (default {DEFAULT_SELECT})")
    r.add_argument("--top", type=int, default=15, help="table rows to print")
    r.add_argument("--no-save-model", action="store_true",
                   help="do not fit and write best_pipeline.joblib")
    r.set_defaults(func=_cmd_recommend)

    e = sub.add_parser("embed", parents=[common, model_opts],
                       help="write features of a text column to Parquet or .npy",
                       description="Encode a text column and write the features.")
    e.add_argument("data", metavar="DATA", help="CSV/TSV/Parquet file")
    e.add_argument("--text-col", default="text")
    e.add_argument("-o", "--output", required=True,
                   help="features.parquet (named columns) or features.npy")
    e.add_argument("--layers", type=_parse_layers, default=-1,
                   help="'all' or comma-separated hidden states (default -1; write "
                        "--layers=-4,-3,-2,-1 for negative lists)")
    e.add_argument("--pooling", default="auto", choices=POOLINGS,
                   help="default auto: the model's own sentence embedding")
    e.add_argument("--layer-combine", default="concat", choices=COMBINES)
    e.add_argument("--normalize", action="store_const", const=True, default="auto",
                   help="L2-normalise each row (default: as the model's own sentence "
                        "embedding with --pooling auto)")
    e.add_argument("--keep-cols", default=None,
                   help="comma-separated columns copied into the Parquet output")
    e.add_argument("--limit", type=_row_limit, default=None,
                   help="first N rows only (0 = all)")
    e.set_defaults(func=_cmd_embed)

    x = sub.add_parser("export", parents=[common],
                       help="write a fitted pipeline as ONNX + tokenizer.json (runs without "
                            "torch via bertfeat.runtime)")
    x.add_argument("pipeline", metavar="PIPELINE.joblib",
                   help="fitted Pipeline starting with BertFeaturizer, TextUnion or "
                        "TfidfVectorizer "
                        "(joblib, e.g. the probe's best_pipeline.joblib; "
                        "load only files you trust)")
    x.add_argument("outdir", metavar="OUTDIR", help="folder to write")
    x.add_argument("--precision", default="fp32", choices=["fp32", "int8"],
                   help="int8: per-token dynamic int8 encoder (fidelity is printed)")
    x.add_argument("--overwrite", action="store_true", help="replace an earlier export")
    x.set_defaults(func=_cmd_export)

    c = sub.add_parser("cache", parents=[common], help="inspect or clear the feature store")
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION")
    ci = csub.add_parser("info", parents=[common], help="where the store is, what it holds")
    ci.add_argument("--json", action="store_true", help="machine-readable output")
    ci.set_defaults(func=_cmd_cache_info)
    cc = csub.add_parser("clear", parents=[common], help="delete stored vectors")
    cc.add_argument("--model", default=None,
                    help="only this model (spec, directory or fingerprint prefix)")
    cc.set_defaults(func=_cmd_cache_clear)
    c.set_defaults(func=lambda args: (c.print_help(), 2)[1])
    return parser
