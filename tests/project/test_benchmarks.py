"""The benchmark scripts' own logic: machine facts, interleaved timing, README updates.

The timings themselves are never asserted (performance claims live in benchmarks/README.md,
produced by the scripts); what is tested is that the scripts measure fairly and report
without clobbering what people wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench(request):
    sys.path.insert(0, str(BENCH))
    request.addfinalizer(lambda: sys.path.remove(str(BENCH)))
    import _common
    import bench_encode

    return _common, bench_encode


def test_machine_facts(bench):
    common, _ = bench
    assert common.cpu_name() and common.cores() >= 1
    assert set(filter(None, common.cpu_flags().split(", "))) <= set(common.SPEED_FLAGS)
    assert common.loadavg() >= 0


def test_ways_are_timed_interleaved_run_by_run(bench):
    _, be = bench
    calls = []

    def way(name):
        def run(texts):
            calls.append((name, len(texts)))
            return np.ones((len(texts), 2))
        return run

    texts = [f"t{i}" for i in range(300)]
    timed = be.time_ways({"a": way("a"), "b": way("b")}, {"a": texts, "b": texts[:10]}, runs=3)
    # one warm-up each, then a, b, a, b, a, b on the full sets
    assert calls == [("a", 256), ("b", 10)] + [("a", 300), ("b", 10)] * 3
    assert set(timed) == {"a", "b"} and timed["a"][1].shape == (300, 2)


def test_readme_section_replaced_and_notes_kept(bench, tmp_path):
    _, be = bench
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## Feature store\n\nstore table\n", encoding="utf-8")
    be.write_readme(be.SECTION + "\n\nfirst table\n", readme)
    text = readme.read_text(encoding="utf-8")
    assert "store table" in text and "first table" in text and be.END_MARK in text
    readme.write_text(text + "\nhand-written notes\n\n## Later section\n\nlater\n",
                      encoding="utf-8")
    be.write_readme(be.SECTION + "\n\nsecond table\n", readme)
    text = readme.read_text(encoding="utf-8")
    assert "first table" not in text and "second table" in text
    assert "hand-written notes" in text and "## Later section" in text and "store table" in text
    assert text.index("second table") < text.index("hand-written notes")


def test_precision_verdict_compares_auto_with_the_fastest_faithful_and_ort(bench):
    _, be = bench

    def row(way, tokens_s, cos_min=1.0, cos_mean=1.0):
        return dict(way=way, tokens_s=tokens_s, cos_min=cos_min, cos_mean=cos_mean)

    rows = [row(be.ST, 3000), row("BertFeaturizer fp32", 6000),
            row("BertFeaturizer bf16", 24000, 0.9998, 0.9999),
            row("BertFeaturizer int8", 30000, 0.97, 0.997),  # faster, not faithful
            row("BertFeaturizer auto", 23000, 0.9998, 0.9999),
            row(be.ORT_OPT, 9000), dict(way="BertFeaturizer fp16", refused="no")]
    verdict = be.precision_verdict(rows)
    assert verdict["fastest_faithful"] == "BertFeaturizer bf16"
    assert verdict["auto_vs_fastest"] == pytest.approx(23000 / 24000)
    assert verdict["auto_vs_ort"] == pytest.approx(23000 / 9000)
