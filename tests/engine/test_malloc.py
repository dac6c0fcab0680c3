"""The encoder keeps freed batch memory in the process (glibc malloc thresholds, once).

mallopt is faked: the tests check which thresholds are asked for, that it happens once
per process and only on a CPU encode, and that ``BERTFEAT_MALLOC=default`` opts out.
"""

from __future__ import annotations

import pytest

from bertfeat import models
from bertfeat.engine import encoder


class _FakeLibc:
    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


@pytest.fixture
def libc(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setattr(encoder, "_MALLOC_TUNED", [])
    monkeypatch.setattr(encoder.ctypes, "CDLL", lambda name: fake)
    monkeypatch.setattr(encoder.sys, "platform", "linux")
    monkeypatch.delenv("BERTFEAT_MALLOC", raising=False)
    return fake


def test_thresholds_are_raised_once(libc):
    assert encoder.keep_freed_memory() is True
    assert encoder.keep_freed_memory() is True
    # M_MMAP_THRESHOLD (-3) and M_TRIM_THRESHOLD (-1) of <malloc.h>, set once
    assert libc.calls == [(-3, encoder.MALLOC_MMAP_THRESHOLD),
                          (-1, encoder.MALLOC_TRIM_THRESHOLD)]
    assert encoder.MALLOC_MMAP_THRESHOLD == 64 << 20
    assert encoder.MALLOC_TRIM_THRESHOLD == 256 << 20


def test_opt_out_and_other_platforms_leave_malloc_alone(libc, monkeypatch):
    monkeypatch.setenv("BERTFEAT_MALLOC", "default")
    assert encoder.keep_freed_memory() is False
    monkeypatch.setattr(encoder, "_MALLOC_TUNED", [])
    monkeypatch.delenv("BERTFEAT_MALLOC")
    monkeypatch.setattr(encoder.sys, "platform", "darwin")
    assert encoder.keep_freed_memory() is False
    assert libc.calls == []


def test_refused_mallopt_reports_false(libc):
    libc.result = 0
    assert encoder.keep_freed_memory() is False


def test_cpu_encode_asks_for_it(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(encoder, "keep_freed_memory", lambda: calls.append(1) or True)
    info = models.resolve_model(tiny_model)
    tokenizer, model = models.load(info, depth=info.n_layers, device="cpu", precision="fp32")
    encoder.encode(tokenizer, model, ["good film", "bad plot"], depth=info.n_layers,
                   max_length=32, batch_size=8, max_tokens=64, device="cpu",
                   want_pooler=False, on_batch=lambda *args: None)
    assert calls == [1]
