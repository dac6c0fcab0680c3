"""What checking the export's file digests costs at load (issue 27).

``bertfeat.runtime.load`` checks the sha256 of every file listed in ``manifest.json``.
This times a cold start (fresh process: import, load, first prediction) with the check
and with the digests taken from the manifest instead of computed, interleaved run by run.

Usage::

    bertfeat export best_pipeline.joblib sst2-onnx
    python benchmarks/bench_runtime_digests.py sst2-onnx [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

_RUN = """
import time
t = time.perf_counter()
from bertfeat import runtime
{skip}
runtime.load({folder!r}).predict(["what a great film"])
print(f"{{time.perf_counter() - t:.4f}}")
"""
_SKIP = """import json
_files = json.load(open({folder!r} + "/manifest.json"))["files"]
runtime.file_digest = lambda path: _files[path.name]  # the recorded digest, not computed
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="an export folder (bertfeat export)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    codes = {"digests checked": _RUN.format(folder=args.folder, skip=""),
             "not checked": _RUN.format(folder=args.folder,
                                        skip=_SKIP.format(folder=args.folder))}
    times: dict[str, list[float]] = {k: [] for k in codes}
    for _ in range(args.runs):
        for name, code in codes.items():
            done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True, check=True)
            times[name].append(float(done.stdout.strip()))
    size = sum(os.path.getsize(os.path.join(args.folder, f)) for f in os.listdir(args.folder))
    print(f"{args.folder}: {size / 1e6:.1f} MB; load average {os.getloadavg()[0]:.1f}")
    for name, values in times.items():
        values.sort()
        print(f"  cold start, {name}: median {values[len(values) // 2]:.3f} s "
              f"(min {values[0]:.3f}, max {values[-1]:.3f}, {len(values)} runs)")


if __name__ == "__main__":
    main()
