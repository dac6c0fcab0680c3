"""Issue 4, item 5: on a CPU, batches run two at a time, each on half of the threads.

Parallel batches must change nothing but the speed: the same vectors, handed over in the
same order, the caller's torch thread count untouched, memory bounded by a few pending
batches, errors raised where the caller sees them, and no thread left running after an
error, an interrupt or an early stop.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from bertfeat import BertFeaturizer, encoder, models

from ..conftest import WORDS
from ..equality import assert_within_bound


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 40)))) for _ in range(n)]


def _workers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("bertfeat-encode")]


@pytest.fixture
def streams(monkeypatch):
    """Force a number of streams: ``streams(2)`` = two batches at once, one thread each."""
    def force(n: int) -> None:
        monkeypatch.setattr(encoder, "cpu_streams", lambda: (n, 1) if n > 1 else (1, 2))
    return force


@pytest.fixture(scope="module")
def loaded(tiny_model):
    info = models.resolve_model(tiny_model)
    return models.load(info, depth=info.n_layers, device="cpu", precision="fp32")


def _encode(loaded, texts, **kwargs):
    tokenizer, model = loaded
    seen, stats = [], {}

    def on_batch(positions, batch_stats, pooler, truncated):
        seen.append(np.asarray(positions))
        for row, p in enumerate(positions):
            stats[int(p)] = batch_stats[row]

    params = dict(depth=model.config.num_hidden_layers, max_length=64, batch_size=16,
                  max_tokens=128, device="cpu", want_pooler=False, on_batch=on_batch)
    params.update(kwargs)
    encoder.encode(tokenizer, model, texts, **params)
    return seen, np.stack([stats[i] for i in range(len(texts))])


def test_parallel_batches_give_the_same_vectors_in_the_same_order(loaded, streams):
    texts = _texts(300)
    streams(1)
    order_one, one = _encode(loaded, texts)
    streams(2)
    order_two, two = _encode(loaded, texts)
    assert len(order_one) >= 8  # enough batches for the parallel path
    assert [list(b) for b in order_one] == [list(b) for b in order_two]
    assert_within_bound(two, one)
    assert not _workers_alive()


def test_parallel_chunked_encoding_matches(loaded, streams):
    texts = [" ".join(_texts(6, seed=i)) for i in range(40)]
    streams(1)
    _, one = _encode(loaded, texts, long_text="chunk", max_length=24, chunk_stride=4)
    streams(2)
    _, two = _encode(loaded, texts, long_text="chunk", max_length=24, chunk_stride=4)
    assert_within_bound(two, one)


def test_few_batches_run_one_at_a_time(loaded, monkeypatch):
    monkeypatch.setattr(encoder, "cpu_streams", lambda: (2, 1))
    called = []
    real = encoder.in_parallel
    monkeypatch.setattr(encoder, "in_parallel",
                        lambda *a, **k: called.append(1) or real(*a, **k))
    _encode(loaded, _texts(10), max_tokens=4096)  # one batch
    assert not called
    _encode(loaded, _texts(300))
    assert called


def test_featurizer_results_do_not_depend_on_streams(tiny_model, streams):
    texts = _texts(200, seed=2)
    feat = BertFeaturizer(model=tiny_model, precision="fp32", cache=False, layers="all",
                          pooling="mean_max", max_batch_tokens=96)
    streams(1)
    one = feat.fit(texts).transform(texts)
    streams(2)
    two = feat.fit(texts).transform(texts)
    assert_within_bound(two, one)


def test_caller_thread_count_is_untouched(loaded, streams):
    before = torch.get_num_threads()
    counts = []
    tokenizer, model = loaded
    streams(2)
    encoder.encode(tokenizer, model, _texts(300), depth=model.config.num_hidden_layers,
                   max_length=64, batch_size=16, max_tokens=128, device="cpu",
                   want_pooler=False,
                   on_batch=lambda *a: counts.append(torch.get_num_threads()))
    assert set(counts) == {before} and torch.get_num_threads() == before


def test_in_parallel_keeps_order_and_bounds_pending_work():
    started, consumed, ahead = [], [0], []

    def run(item):
        started.append(item)
        ahead.append(len(started) - consumed[0])
        time.sleep(0.002 * (item % 3))
        return item * 10

    out = []
    for value in encoder.in_parallel(run, list(range(40)), streams=2, threads=1):
        out.append(value)
        consumed[0] += 1
        time.sleep(0.003)  # a slow consumer
    assert out == [i * 10 for i in range(40)]
    assert max(ahead) <= 2 * 2 + 1
    assert not _workers_alive()


def test_in_parallel_raises_the_error_and_stops():
    ran = []

    def run(item):
        ran.append(item)
        if item == 5:
            raise ValueError("batch 5 failed")
        time.sleep(0.01)
        return item

    got = []
    with pytest.raises(ValueError, match="batch 5 failed"):
        for value in encoder.in_parallel(run, list(range(100)), streams=2, threads=1):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]
    assert len(ran) <= 5 + 1 + 2 * 2  # no more than the pending window after the error
    assert not _workers_alive()


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_error_in_the_consumer_stops_the_workers(loaded, streams, error):
    tokenizer, model = loaded
    streams(2)
    batches = []

    def on_batch(positions, *rest):
        batches.append(positions)
        if len(batches) == 2:
            raise error("stop")

    with pytest.raises(error):
        encoder.encode(tokenizer, model, _texts(400), depth=model.config.num_hidden_layers,
                       max_length=64, batch_size=16, max_tokens=128, device="cpu",
                       want_pooler=False, on_batch=on_batch)
    assert not _workers_alive()
    assert len(batches) == 2


def test_two_streams_by_default_on_a_multi_thread_cpu(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert encoder.cpu_streams() == (2, 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert encoder.cpu_streams() == (1, 1)
