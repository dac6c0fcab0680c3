"""Exported pipeline (onnxruntime, no torch) vs the torch pipeline, fp32 and int8.

For all-MiniLM-L6-v2 (mean of the last layer) with LogisticRegression / SVC / MLP heads fitted
on SST-2 train, on the SST-2 test set:

* tokens/s of the featurizer part (torch ``BertFeaturizer(cache=False)`` vs
  ``bertfeat.runtime``), median of interleaved runs;
* cosine of the features to torch fp32 (mean / min) and label agreement of each head;
* cold start (a fresh process: imports, load, one prediction), peak RSS of a fresh process
  that predicts 500 texts, and the size on disk (export folder vs joblib + model folder).

``--int8-isa`` times torch's fp32 and int8 paths in fresh processes with oneDNN capped at
lower ISAs (``ONEDNN_MAX_CPU_ISA``; AVX2 also sets ``MKL_ENABLE_INSTRUCTIONS=AVX2`` and
``ATEN_CPU_CAPABILITY=avx2``): the emulation of CPUs without AMX/VNNI that decides where
``precision="int8"`` is refused.

Usage: ``.venv/bin/python benchmarks/bench_export.py [--quick] [--int8-isa]``
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cores, cpu_flags, cpu_name, loadavg  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MAX_LENGTH = 256
ISA_CAPS = {
    "native": {},
    "AVX512_CORE_VNNI": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
    "AVX2_VNNI": {"ONEDNN_MAX_CPU_ISA": "AVX2_VNNI"},
    "AVX512_CORE (no VNNI)": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "AVX2 (no VNNI)": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                       "ATEN_CPU_CAPABILITY": "avx2"},
}


def _data(name: str):
    import pandas as pd

    return pd.read_csv(DATA / name)


def _cos(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(kind: str, path: str, n: int) -> None:
    """A fresh process: load, predict one text (cold start), then ``n`` texts (peak RSS)."""
    t0 = time.perf_counter()
    if kind == "torch":
        import joblib

        pipe = joblib.load(path)
    else:
        from bertfeat import runtime

        pipe = runtime.load(path)
    pipe.predict(["a first text"])
    cold = time.perf_counter() - t0
    texts = _data("sst2_test.csv").text.tolist()[:n]
    pipe.predict(texts)
    print(json.dumps({"cold_s": cold, "rss_mib": _peak_rss_mib(),
                      "torch_loaded": "torch" in sys.modules}))


def _fresh(kind: str, path: str, n: int, env: dict | None = None) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", kind, path, str(n)],
                         capture_output=True, text=True, timeout=900, check=True,
                         env={**os.environ, **(env or {})})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - start  # interpreter start included
    return res


def _isa_child(n: int, runs: int) -> None:
    """torch fp32 vs int8 encoding of ``n`` SST-2 texts in this process (ISA set by env)."""
    import torch

    from bertfeat import encoder, models

    info = models.resolve_model("default")
    texts = _data("sst2_test.csv").text.tolist()[:n]
    out = {"capability": torch.backends.cpu.get_cpu_capability(),
           "int8_path": models.int8_path()}
    vectors = {}
    loaded = {p: models.load(info, depth=info.n_layers, device="cpu", precision=p)
              for p in ("fp32", "int8")}  # load() does not refuse: this measures the kernel
    times: dict[str, list[float]] = {p: [] for p in loaded}
    for _ in range(runs + 1):
        for precision, (tok, model) in loaded.items():
            got = np.zeros((n, 384), np.float32)

            def keep(pos, stats, pooler, trunc, got=got):
                got[pos] = stats[:, -1, 1]

            t0 = time.perf_counter()
            encoder.encode(tok, model, texts, depth=info.n_layers, max_length=MAX_LENGTH,
                           batch_size=128, max_tokens=4096, device="cpu", want_pooler=False,
                           on_batch=keep)
            times[precision].append(time.perf_counter() - t0)
            vectors[precision] = got
    for precision in loaded:
        out[f"{precision}_s"] = statistics.median(times[precision][1:])  # first = warm-up
    cos = _cos(vectors["int8"], vectors["fp32"])
    out.update(cos_mean=float(cos.mean()), cos_min=float(cos.min()), load=loadavg())
    print(json.dumps(out))


def int8_isa_table(n: int, runs: int) -> str:
    rows = ["| oneDNN ISA cap | torch capability | int8 path (bertfeat) | fp32 (s) | "
            "int8 (s) | int8 speed-up | cosine int8/fp32 mean / min | load avg |",
            "|---|---|---|---:|---:|---:|---|---:|"]
    for label, env in ISA_CAPS.items():
        res = subprocess.run([sys.executable, __file__, "--isa-child", str(n), str(runs)],
                             capture_output=True, text=True, timeout=900, check=True,
                             env={**os.environ, **env})
        r = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(f"| {label} | {r['capability']} | {r['int8_path'] or 'none: refused'} | "
                    f"{r['fp32_s']:.2f} | {r['int8_s']:.2f} | {r['fp32_s'] / r['int8_s']:.2f}× "
                    f"| {r['cos_mean']:.4f} / {r['cos_min']:.4f} | {r['load']:.1f} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts and runs")
    parser.add_argument("--n-train", type=int, default=None, help="SST-2 train texts")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--int8-isa", action="store_true",
                        help="only the torch int8 vs fp32 table under oneDNN ISA caps")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--isa-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return
    if args.isa_child:
        _isa_child(*args.isa_child)
        return
    import onnxruntime
    import torch

    import bertfeat

    print(f"CPU {cpu_name()} ({cpu_flags()}), {cores()} cores; torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__}, bertfeat {bertfeat.__version__}; "
          f"{_dt.datetime.now():%Y-%m-%d %H:%M}; load {loadavg():.1f}", flush=True)
    runs = args.runs or (2 if args.quick else 3)
    if args.int8_isa:
        print(int8_isa_table(200 if args.quick else 600, runs))
        return

    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    from bertfeat import BertFeaturizer, runtime
    from bertfeat.export import export_pipeline
    from bertfeat.models import resolve_model

    n_train = args.n_train or (1000 if args.quick else 6920)
    train = _data("sst2_train.csv").iloc[:n_train]
    test = _data("sst2_test.csv")
    texts = test.text.tolist()[:600] if args.quick else test.text.tolist()
    feat = BertFeaturizer(pooling="mean", precision="fp32", max_length=MAX_LENGTH,
                          show_progress=False)
    train_x = feat.fit_transform(train.text.tolist())
    heads = {"LogisticRegression": LogisticRegression(max_iter=2000),
             "SVC (rbf)": SVC(), "MLP": MLPClassifier((128,), max_iter=300, random_state=0)}
    pipes = {}
    for name, head in heads.items():
        head.fit(train_x, train.label)
        pipes[name] = make_pipeline(feat, head)
    torch_pred = {name: p.predict(texts) for name, p in pipes.items()}  # store warm now
    n_tokens = None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        joblib.dump(pipes["LogisticRegression"], tmp / "pipe.joblib")
        exported = {}
        for precision in ("fp32", "int8"):
            for name, pipe in pipes.items():
                out = tmp / f"{precision}-{name.split()[0]}"
                t0 = time.perf_counter()
                export_pipeline(pipe, out, precision=precision, check_texts=texts[:64])
                exported[(precision, name)] = (out, time.perf_counter() - t0)
        # encoding speed, interleaved: torch fp32 / torch auto vs runtime fp32 / int8
        ways = {
            "torch BertFeaturizer fp32": BertFeaturizer(pooling="mean", precision="fp32",
                                                        cache=False, max_length=MAX_LENGTH,
                                                        show_progress=False).fit(["x"]),
            "torch BertFeaturizer auto": BertFeaturizer(pooling="mean", precision="auto",
                                                        cache=False, max_length=MAX_LENGTH,
                                                        show_progress=False).fit(["x"]),
            "onnxruntime export fp32": runtime.load(exported[("fp32", "LogisticRegression")][0]),
            "onnxruntime export int8": runtime.load(exported[("int8", "LogisticRegression")][0]),
        }
        calls = {k: (w.transform if k.startswith("torch") else w.encode)
                 for k, w in ways.items()}
        times: dict[str, list[float]] = {k: [] for k in ways}
        outs, loads = {}, {}
        for call in calls.values():
            call(texts[:128])
        for _ in range(runs):
            for k, call in calls.items():
                loads.setdefault(k, loadavg())
                t0 = time.perf_counter()
                outs[k] = call(texts)
                times[k].append(time.perf_counter() - t0)
        tok = ways["onnxruntime export fp32"]._tokenizer
        graphs = {p: ways[f"onnxruntime export {p}"].manifest.get("graph")
                  for p in ("fp32", "int8")}
        n_tokens = sum(len(e.ids) for e in tok.encode_batch(texts))
        ref = outs["torch BertFeaturizer fp32"]
        torch_size = _dir_size(resolve_model("default").path) + (tmp / "pipe.joblib").stat(
        ).st_size
        cold = {"torch fp32": _fresh("torch", str(tmp / "pipe.joblib"), 500,
                                     {"BERTFEAT_CACHE_DIR": str(tmp / "cold-store")})}
        for precision in ("fp32", "int8"):
            cold[f"export {precision}"] = _fresh(
                "runtime", str(exported[(precision, "LogisticRegression")][0]), 500)
        for k in ways:
            sec = statistics.median(times[k])
            cos = _cos(outs[k], ref)
            precision = k.rsplit(" ", 1)[1]
            if k.startswith("torch"):
                agree, size = "1 / 1 / 1 (reference)", torch_size
                c = cold.get(f"torch {precision}")
            else:
                agree = " / ".join(
                    f"{(runtime.load(exported[(precision, n)][0]).predict(texts) == torch_pred[n]).mean():.4f}"  # noqa: E501
                    for n in pipes)
                size = _dir_size(exported[(precision, "LogisticRegression")][0])
                c = cold[f"export {precision}"]
            started = f"{c['cold_s']:.2f} ({c['process_s']:.2f})" if c else "—"
            rss = f"{c['rss_mib']:.0f}" if c else "—"
            rows.append(f"| {k} | {sec:.2f} | {n_tokens / sec:,.0f} | {cos.mean():.5f} / "
                        f"{cos.min():.5f} | {agree} | {started} | {rss} | {size / 1e6:.1f} | "
                        f"{loads[k]:.1f} |")
        export_s = {p: statistics.median(exported[(p, n)][1] for n in pipes)
                    for p in ("fp32", "int8")}
    header = ("| way | time (s) | tokens/s | cosine to torch fp32 mean / min | label agreement "
              "LR / SVC / MLP | cold start s (process s) | peak RSS MiB | size MB | load |\n"
              "|---|---:|---:|---|---|---|---:|---:|---:|")
    print(f"\nSST-2 test, {len(texts)} texts, {n_tokens} tokens; heads fitted on {n_train} "
          f"train texts; export time (median over heads): fp32 {export_s['fp32']:.0f} s, "
          f"int8 {export_s['int8']:.0f} s; load at the end {loadavg():.1f}")
    print(f"exported graphs: {graphs}")
    print(header + "\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
