"""What the trustworthy fingerprint costs: cold hash, warm start, per-call re-check.

A fitted featurizer re-checks the model's files (``models.model_signature``: stat + 128 KiB
read per file) before every store read; a new process (or changed files) recomputes the
fingerprint, whose weight digests come from the store's memo when the signature matches.

    python benchmarks/bench_fingerprint.py [--size-mb 1024] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def _median(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024,
                        help="size of the synthetic weight file (default 1024)")
    parser.add_argument("--quick", action="store_true", help="64 MB file, fewer runs")
    args = parser.parse_args()
    size_mb = 64 if args.quick else args.size_mb
    runs = 20 if args.quick else 200

    import torch
    import transformers

    from bertfeat import BertFeaturizer, FeatureStore, models

    print(f"cpu: {_common.cpu_name()} ({_common.cores()} cores; flags {_common.cpu_flags()})")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"load average at start: {_common.loadavg():.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.safetensors"
        with open(big, "wb") as fh:
            block = os.urandom(1 << 20)
            for _ in range(size_mb):
                fh.write(block)
        _sha256(big)  # into the page cache: we measure hashing, not the disk
        rows.append((f"full SHA-256 of a {size_mb} MB file", _median(lambda: _sha256(big), 3)))
        rows.append((f"file_signature of the {size_mb} MB file",
                     _median(lambda: models.file_signature(big), runs)))

        info = models.resolve_model("default")
        weights = models.weight_files(info.path)
        mb = sum(f.stat().st_size for f in weights) / 2 ** 20
        rows.append((f"full SHA-256 of the default model's weights ({mb:.0f} MB)",
                     _median(lambda: [_sha256(f) for f in weights], 3)))
        rows.append(("model_signature(default): the per-call re-check",
                     _median(lambda: models.model_signature(info), runs)))
        store = FeatureStore(Path(tmp) / "store")
        settings = {"max_length": 256, "precision": "fp32"}

        def cold():
            models.fingerprints._digest_cache.clear()
            models.fingerprints._digest_told.clear()
            store.clear()
            models.checked_fingerprint(info, persistent=store, **settings)

        def warm_new_process():
            models.fingerprints._digest_cache.clear()
            models.fingerprints._digest_told.clear()
            models.checked_fingerprint(info, persistent=store, **settings)

        rows.append(("fingerprint, cold (nothing remembered)", _median(cold, 3)))
        models.checked_fingerprint(info, persistent=store, **settings)
        rows.append(("fingerprint, warm start (digest from the store)",
                     _median(warm_new_process, runs // 4)))
        rows.append(("fingerprint, same process (digest in memory)",
                     _median(lambda: models.checked_fingerprint(
                         info, persistent=store, **settings), runs // 4)))
        rows.append(("BertFeaturizer(cache=store).fit, warm", _median(
            lambda: BertFeaturizer(cache=store, device="cpu").fit(["x"]), runs // 10)))
        rows.append(("BertFeaturizer(cache=False).fit (no weights hashed)", _median(
            lambda: BertFeaturizer(cache=False, device="cpu").fit(["x"]), runs // 10)))
        store.close()
    print()
    print("| what | median time |")
    print("|---|---:|")
    for name, seconds in rows:
        shown = f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"
        print(f"| {name} | {shown} |")
    print(f"\nload average at the end: {_common.loadavg():.2f}")


if __name__ == "__main__":
    main()
