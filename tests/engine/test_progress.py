"""Issue 28: long jobs report progress without a terminal.

Where nobody watches (stderr is a file), :class:`bertfeat.progress.Progress` writes a line
through ``logging`` every interval (elapsed, done/total, rate, ETA); where a person watches
(a terminal, a notebook) it is a tqdm bar. Timings are faked (a fake clock, or an interval
of 0 so that every step logs): nothing here depends on the machine's speed.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bertfeat import progress as progress_mod
from bertfeat.progress import Progress, format_seconds, interactive

from ..conftest import WORDS

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_every_interval_with_rate_and_eta(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="bertfeat")
    job = Progress(100, "bertfeat encode", "text", mode="log", interval=10, clock=clock)
    clock.now += 5
    job.update(10)  # 5 s: before the interval, no line
    assert caplog.messages == []
    clock.now += 10
    job.update(20)  # 15 s, 30 done
    clock.now += 3
    job.update(10)  # 18 s: within 10 s of the last line
    clock.now += 22
    job.update(60)  # 40 s, all done
    job.close()
    assert caplog.messages == [
        "bertfeat encode: 30/100 texts (30%), elapsed 15s, 2 texts/s, ETA 35s",
        "bertfeat encode: 100/100 texts (100%), elapsed 40s, 2.5 texts/s",
        "bertfeat encode: 100/100 texts (100%), elapsed 40s, 2.5 texts/s [done]",
    ]
    assert all(r.name == "bertfeat" and r.levelno == logging.INFO for r in caplog.records)


def test_a_short_job_writes_nothing(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="bertfeat")
    with Progress(5, "quick", mode="log", interval=30, clock=clock) as job:
        clock.now += 2
        job.update(5)
    assert caplog.messages == []


def test_bar_on_a_terminal_lines_elsewhere(caplog):
    screen = io.StringIO()
    screen.isatty = lambda: True
    assert interactive(screen)
    bar = Progress(3, "bertfeat encode", stream=screen)
    assert bar.mode == "bar"
    bar.update(3)
    bar.close()
    assert "bertfeat encode" in screen.getvalue() and "3/3" in screen.getvalue()
    log_file = io.StringIO()
    assert not interactive(log_file)
    assert Progress(3, "x", stream=log_file).mode == "log"
    assert Progress(3, "x", enabled=False, stream=screen).mode == "off"


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("BERTFEAT_PROGRESS_INTERVAL", "2.5")
    assert progress_mod.log_interval() == 2.5
    monkeypatch.setenv("BERTFEAT_PROGRESS_INTERVAL", "soon")
    assert progress_mod.log_interval() == progress_mod.DEFAULT_INTERVAL
    assert [format_seconds(s) for s in (4.4, 185, 3720)] == ["4s", "3m05s", "1h02m"]


def test_encoding_logs_to_a_file_without_any_logging_setup(tiny_model, tmp_path):
    """As a user runs it: a script, stderr sent to a file, no logging configured."""
    script = textwrap.dedent(f"""
        from bertfeat import BertFeaturizer
        texts = [f"text number {{i}} " + "word " * (i % 7) for i in range(300)]
        BertFeaturizer(model={tiny_model!r}, precision="fp32", cache=False).fit(
            texts[:1]).transform(texts)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "BERTFEAT_PROGRESS_INTERVAL": "0"}
    with open(tmp_path / "err.log", "w") as err:
        done = subprocess.run([sys.executable, "-c", script], stderr=err,
                              stdout=subprocess.PIPE, env=env, timeout=300)
    log = (tmp_path / "err.log").read_text()
    assert done.returncode == 0, log[-2000:]
    lines = [line for line in log.splitlines() if "bertfeat encode: " in line]
    assert lines, log[-2000:]
    assert "300/300 texts (100%)" in lines[-1] and "[done]" in lines[-1]
    assert "elapsed" in lines[0] and "texts/s" in lines[0]


def test_fine_tuning_logs_its_steps(tiny_model, caplog, monkeypatch):
    from bertfeat import BertClassifier, base

    monkeypatch.setattr(base, "PROGRESS_MIN_ITEMS", 10)
    monkeypatch.setenv("BERTFEAT_PROGRESS_INTERVAL", "0")
    caplog.set_level(logging.INFO, logger="bertfeat")
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 5)) for _ in range(24)]
    y = np.arange(24) % 2
    BertClassifier(model=tiny_model, epochs=2, batch_size=8, early_stopping=False,
                   precision="fp32", random_state=0).fit(texts, y)
    lines = [m for m in caplog.messages if m.startswith("bertfeat fine-tune: ")]
    assert len(lines) == 6 + 1  # 3 steps per epoch x 2, then the closing line
    assert lines[0].startswith("bertfeat fine-tune: 1/6 steps (17%)") and "epoch 1/2" in lines[0]
    assert "epoch 2/2" in lines[-2] and lines[-1].endswith("[done]")


def test_probe_logs_its_stages_unless_quiet(tiny_model, caplog, monkeypatch):
    from bertfeat.probe import probe

    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, 5)) for _ in range(24)]
    y = np.arange(24) % 2
    kwargs = dict(model=tiny_model, layers=[-1], poolings=("mean",), heads=("logreg",),
                  cv=2, combos=False, random_control=False, union=False, cache=False,
                  featurizer_params={"precision": "fp32"})
    caplog.set_level(logging.INFO, logger="bertfeat")
    probe(texts, y, verbose=False, **kwargs)
    assert caplog.messages == []
    probe(texts, y, **kwargs)  # the default, "auto": stderr is not a terminal here
    stages = [m for m in caplog.messages if m.startswith("bertfeat probe: ")]
    assert stages and "stages (100%)" in stages[-1] and stages[-1].endswith("[done]")
    assert any("TF-IDF" in m for m in caplog.messages)  # the probe's own messages
    with pytest.raises(ValueError, match="verbose"):
        probe(texts, y, verbose="loud", **kwargs)
