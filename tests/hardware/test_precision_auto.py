"""Issue 26: ``precision="auto"`` is decided by measurement, remembered, and overridable.

Nothing here times real work: the decision logic is fed faked speeds and cosines, the
calibration runs with a faked clock, and the end-to-end tests fake the decision.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertfeat import BertFeaturizer, hardware, models
from bertfeat.cli import main
from bertfeat.engine import precision as auto_precision


@pytest.fixture(autouse=True)
def _measured(monkeypatch):
    """Let ``auto`` decide (conftest pins it), with a fresh memo, on a CPU with bf16."""
    monkeypatch.delenv("BERTFEAT_PRECISION")
    monkeypatch.setattr(hardware.decision, "_memo", {})
    monkeypatch.setattr(hardware.decision, "_key_locks", {})
    monkeypatch.setattr(hardware.machine, "candidates", lambda device: ("fp32", "bf16"))


def _cal(bf16_speed: float, mean: float = 0.99999, low: float = 0.9999, **extra):
    speeds = {"fp32": 1000.0, "bf16": bf16_speed, **extra.pop("speeds", {})}
    means = {"fp32": 1.0, "bf16": mean, **extra.pop("means", {})}
    lows = {"fp32": 1.0, "bf16": low, **extra.pop("lows", {})}
    return hardware.Calibration(tokens_per_s=speeds, cosine_mean=means, cosine_min=lows,
                                **extra)


# ------------------------------------------------------------------------- the choice
@pytest.mark.parametrize("cal, expected", [
    (_cal(4000.0), "bf16"),                      # AMD EPYC: bf16 ~4x, faithful
    (_cal(730.0), "fp32"),                       # Xeon without AMX: bf16 0.73x
    (_cal(1050.0), "fp32"),                      # a tie is noise: under MIN_SPEEDUP
    (_cal(4000.0, mean=0.9985), "fp32"),         # fast but unfaithful on average
    (_cal(4000.0, low=0.99), "fp32"),            # fast but one text unfaithful
    (_cal(4000.0, mean=float("nan"), low=float("nan")), "fp32"),  # NaN: not faithful
    (_cal(0.0, errors={"bf16": "RuntimeError: no kernel"}), "fp32"),
    (_cal(3000.0, speeds={"fp16": 3500.0}, means={"fp16": 0.9999}, lows={"fp16": 0.999}),
     "fp16"),                                    # the fastest faithful of several
    (_cal(3000.0, speeds={"fp16": 3500.0}, means={"fp16": 0.99}, lows={"fp16": 0.9}),
     "bf16"),                                    # the fastest is not faithful
])
def test_choose_keeps_the_fastest_faithful_precision(cal, expected):
    precision, reason = hardware.choose(cal)
    assert precision == expected
    assert "bf16" in reason


# --------------------------------------------------------------- calibrate, faked clock
class FakeRun:
    """Stands in for a loaded model: advances the fake clock by tokens / speed and
    returns fp32's outputs rotated to a given cosine."""

    def __init__(self, clock, speed, cosine, tokens=1000):
        self.clock, self.speed, self.cosine, self.tokens = clock, speed, cosine, tokens
        self.calls = 0

    def __call__(self):
        import torch

        self.calls += 1
        self.threads = torch.get_num_threads()
        self.clock[0] += self.tokens / self.speed
        ref = np.tile(np.eye(2, dtype=np.float32)[0], (5, 1))
        angle = np.arccos(self.cosine)
        return ref * np.cos(angle) + np.tile([0.0, 1.0], (5, 1)) * np.sin(angle)


@pytest.fixture
def fake_models(monkeypatch):
    """``_encode_runner``/``_train_runner`` replaced by FakeRun; returns its settings."""
    clock = [0.0]
    settings = {"fp32": (1000.0, 1.0), "bf16": (4000.0, 0.99999)}
    made = []

    def runner(info, device, precision, texts, trust_remote_code):
        run = FakeRun(clock, *settings[precision])
        made.append((precision, run))
        return run, run.tokens

    monkeypatch.setattr(auto_precision, "_clock", lambda: clock[0])
    monkeypatch.setattr(auto_precision, "_encode_runner", runner)
    monkeypatch.setattr(auto_precision, "_train_runner", runner)
    return settings, made


def test_calibrate_times_each_candidate_and_compares_with_fp32(fake_models, tiny_model):
    import torch

    from bertfeat.engine.encoder import cpu_streams

    settings, made = fake_models
    info = models.resolve_model(tiny_model)
    before = torch.get_num_threads()
    cal = auto_precision.calibrate(info, "cpu", ("fp32", "bf16"), budget_s=3.0)
    # one stream's threads while measuring, the caller's afterwards
    assert {run.threads for _, run in made} == {max(1, cpu_streams()[1])}
    assert torch.get_num_threads() == before
    assert cal.tokens_per_s == pytest.approx({"fp32": 1000.0, "bf16": 4000.0})
    assert cal.cosine_mean["bf16"] == pytest.approx(0.99999, abs=1e-6)
    assert cal.cosine_min["bf16"] == pytest.approx(0.99999, abs=1e-6)
    # a warm-up each, then timed rounds until the budget (3 fake seconds) is spent
    calls = {p: run.calls for p, run in made}
    assert calls["fp32"] == calls["bf16"] and 2 <= calls["fp32"] <= 6
    assert hardware.choose(cal)[0] == "bf16"


def test_a_candidate_that_fails_is_not_chosen(fake_models, tiny_model, monkeypatch):
    settings, _ = fake_models
    real = auto_precision._encode_runner

    def failing(info, device, precision, texts, trust_remote_code):
        if precision == "bf16":
            raise RuntimeError("no bf16 kernel here")
        return real(info, device, precision, texts, trust_remote_code)

    monkeypatch.setattr(auto_precision, "_encode_runner", failing)
    cal = auto_precision.calibrate(models.resolve_model(tiny_model), "cpu", ("fp32", "bf16"))
    assert "no bf16 kernel" in cal.errors["bf16"]
    assert hardware.choose(cal)[0] == "fp32"


@pytest.mark.parametrize("purpose", ["encode", "train"])
def test_calibrate_runs_the_real_model(tiny_model, purpose):
    """The real runners on the tiny model: outputs compared, speeds measured (not
    asserted: timings are not for tests)."""
    info = models.resolve_model(tiny_model)
    cal = auto_precision.calibrate(info, "cpu", ("fp32", "bf16"), purpose=purpose, budget_s=0.0)
    assert set(cal.tokens_per_s) == {"fp32", "bf16"} and cal.tokens > 0
    assert all(speed > 0 for speed in cal.tokens_per_s.values())
    assert cal.cosine_min["fp32"] == 1.0
    assert 0.99 <= cal.cosine_min["bf16"] <= cal.cosine_mean["bf16"] <= 1.0 + 1e-9


def test_calibration_texts_have_short_and_long_shapes():
    texts = hardware.calibration_texts()
    lengths = sorted(len(t.split()) for t in texts)
    assert len(texts) == len(set(texts)) >= 30
    assert lengths[0] <= 5 and lengths[-1] >= 60


# -------------------------------------------------------------- decide and remember
def test_decision_is_measured_once_then_remembered(fake_models, tiny_model, monkeypatch):
    _, made = fake_models
    info = models.resolve_model(tiny_model)
    first = auto_precision.decide(info, "cpu")
    assert (first.precision, first.source) == ("bf16", "measured")
    n_runs = len(made)
    assert n_runs == 2
    # in this process: the memo
    assert auto_precision.decide(info, "cpu") is first
    # a new process: the file in the cache folder, no calibration
    monkeypatch.setattr(hardware.decision, "_memo", {})
    again = auto_precision.decide(info, "cpu")
    assert (again.precision, again.source) == ("bf16", "remembered")
    assert again.calibration.tokens_per_s == first.calibration.tokens_per_s
    assert len(made) == n_runs
    record = json.loads(hardware.decisions_path().read_text())["decisions"][first.key]
    assert record["precision"] == "bf16" and record["model"] == info.spec
    # the fine-tuning decision is another measurement
    assert auto_precision.decide(info, "cpu", purpose="train").source == "measured"
    assert len(made) == n_runs + 2


def test_another_cpu_or_torch_measures_again(fake_models, tiny_model, monkeypatch):
    _, made = fake_models
    info = models.resolve_model(tiny_model)
    auto_precision.decide(info, "cpu")
    monkeypatch.setattr(hardware.decision, "_memo", {})
    monkeypatch.setattr(hardware.machine, "cpu_model", lambda: "Another CPU")
    assert auto_precision.decide(info, "cpu").source == "measured"
    import torch

    monkeypatch.setattr(hardware.decision, "_memo", {})
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert auto_precision.decide(info, "cpu").source == "measured"
    assert len(made) == 6


def test_bf16_slow_or_unfaithful_keeps_fp32(fake_models, tiny_model, monkeypatch):
    settings, _ = fake_models
    info = models.resolve_model(tiny_model)
    settings["bf16"] = (730.0, 0.99999)  # slow
    assert auto_precision.decide(info, "cpu").precision == "fp32"
    monkeypatch.setattr(hardware.decision, "_memo", {})
    hardware.decisions_path().unlink()
    settings["bf16"] = (4000.0, 0.99)  # fast but not faithful
    decision = auto_precision.decide(info, "cpu")
    assert decision.precision == "fp32" and "not faithful" in decision.reason


def test_a_damaged_decisions_file_is_measured_again(fake_models, tiny_model, monkeypatch):
    _, made = fake_models
    info = models.resolve_model(tiny_model)
    key = auto_precision.decide(info, "cpu").key
    path = hardware.decisions_path()
    for damaged in ("{not json", json.dumps({"format": 1, "decisions": {
            key: {"precision": "int8", "tokens_per_s": {}, "cosine_mean": {},
                  "cosine_min": {}}}})):
        path.write_text(damaged)
        monkeypatch.setattr(hardware.decision, "_memo", {})
        assert auto_precision.decide(info, "cpu").source == "measured"
    assert len(made) == 6
    assert json.loads(path.read_text())["decisions"][key]["precision"] == "bf16"


# ------------------------------------------------------------ overrides, fingerprint
@pytest.fixture
def decided(monkeypatch):
    """``engine.precision.decide`` faked: returns ``decided[0]`` and counts calls."""
    state = ["bf16", 0]

    def fake(info, device, *, purpose="encode", trust_remote_code=False):
        state[1] += 1
        return hardware.Decision(state[0], "measured", "faked")

    monkeypatch.setattr(auto_precision, "decide", fake)
    return state


def test_overrides_win_over_the_decision(decided, tiny_model, monkeypatch):
    info = models.resolve_model(tiny_model)
    assert auto_precision.resolve_precision("auto", "cpu", info) == "bf16" and decided[1] == 1
    assert auto_precision.resolve_precision("fp32", "cpu", info) == "fp32"
    monkeypatch.setenv("BERTFEAT_PRECISION", "fp32")
    assert auto_precision.resolve_precision("auto", "cpu", info) == "fp32"
    assert auto_precision.resolve_precision("bf16", "cpu", info) == "bf16"  # explicit wins over env
    assert decided[1] == 1
    monkeypatch.setenv("BERTFEAT_PRECISION", "fp64")
    with pytest.raises(ValueError, match="BERTFEAT_PRECISION='fp64'"):
        auto_precision.resolve_precision("auto", "cpu", info)
    monkeypatch.setenv("BERTFEAT_PRECISION", "fp16")
    with pytest.raises(ValueError, match="fp16.*GPUs"):
        auto_precision.resolve_precision("auto", "cpu", info)
    monkeypatch.delenv("BERTFEAT_PRECISION")
    with pytest.raises(TypeError, match="ModelInfo"):
        auto_precision.resolve_precision("auto", "cpu")


def test_featurizer_uses_the_decision_and_fingerprints_it(decided, tiny_model, tmp_path,
                                                           encode_spy):
    """A store filled under auto = fp32 is not read when auto becomes bf16."""
    store = str(tmp_path / "store")
    texts = ["the film was good", "a boring story", "i love this movie"]
    decided[0] = "fp32"
    fp32 = BertFeaturizer(model=tiny_model, cache=store, device="cpu").fit(texts)
    assert fp32.precision_ == "fp32"
    fp32_out = fp32.transform(texts)
    assert sum(encode_spy) == 3
    decided[0] = "bf16"
    bf16 = BertFeaturizer(model=tiny_model, cache=store, device="cpu").fit(texts)
    assert bf16.precision_ == "bf16"
    explicit = BertFeaturizer(model=tiny_model, precision="bf16", cache=store,
                              device="cpu").fit(texts)
    assert bf16.fingerprint_ == explicit.fingerprint_ != fp32.fingerprint_
    bf16_out = bf16.transform(texts)
    assert sum(encode_spy) == 6  # encoded again, not read from the fp32 entries
    assert not np.array_equal(bf16_out, fp32_out)
    np.testing.assert_allclose(bf16_out, fp32_out, rtol=0, atol=0.05 * np.abs(fp32_out).max())
    # and back: the fp32 entries are still there, read without encoding
    decided[0] = "fp32"
    again = BertFeaturizer(model=tiny_model, cache=store, device="cpu").fit(texts)
    np.testing.assert_array_equal(again.transform(texts), fp32_out)
    assert sum(encode_spy) == 6


def test_cache_info_shows_the_decisions(fake_models, tiny_model, capsys, monkeypatch):
    info = models.resolve_model(tiny_model)
    auto_precision.decide(info, "cpu")
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "precision='auto' decisions: 1" in out
    assert "encode: bf16" in out and info.spec in out and "bf16 faithful and 4.00x" in out
    monkeypatch.setenv("BERTFEAT_PRECISION", "fp32")
    assert main(["cache", "info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["precision_decisions"]
    assert data["override"] == "fp32"
    (record,) = data["decisions"].values()
    assert record["precision"] == "bf16" and record["tokens_per_s"]["bf16"] == 4000.0


def test_a_dask_worker_keeps_the_clients_decision(decided, tiny_model, tmp_path):
    """A worker process refits the featurizer; with ``auto`` it takes the client's
    measured precision instead of measuring its own (which could differ: another CPU,
    other load), so its vectors and fingerprint are the client's."""
    from bertfeat.deploy import dask_partitions

    client = BertFeaturizer(model=tiny_model, cache=str(tmp_path / "s"), device="cpu").fit([])
    assert client.precision_ == "bf16" and decided[1] == 1
    decided[0] = "fp32"  # what this "worker" would measure
    local = dask_partitions._process_featurizer(client, dask_partitions._token(client))
    assert local.precision_ == "bf16" and local.fingerprint_ == client.fingerprint_
    assert decided[1] == 1


def test_probe_control_takes_the_real_models_precision(tiny_model, tmp_path, monkeypatch):
    """The random-weights control is encoded in the precision measured for the real
    model: its copy of the model is not measured again."""
    from bertfeat import FeatureStore
    from bertfeat.probe import probe

    asked = []

    def fake(info, device, *, purpose="encode", trust_remote_code=False):
        asked.append(str(info.path))
        return hardware.Decision("bf16", "measured", "faked")

    monkeypatch.setattr(auto_precision, "decide", fake)
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "great", "awful", "story", "fun"]
    texts = [" ".join(rng.choice(words, 5)) for _ in range(30)]
    y = np.array([i % 2 for i in range(30)])
    res = probe(texts, y, model=tiny_model, poolings=("mean",), heads=("logreg",),
                combos=False, tfidf=False, union=False, chunk=False, cv=3,
                cache=FeatureStore(tmp_path / "s"))
    assert (res.table.family == "random").any()
    assert asked and set(asked) == {str(models.resolve_model(tiny_model).path)}
    control = res.candidate(res.table[res.table.family == "random"].iloc[0]["candidate"])
    assert control.build()[0].precision == "bf16"


def test_the_decisions_file_lock_excludes_other_processes(tmp_path):
    """Parallel processes calibrate one after another: the lock is a :mod:`filelock` lock
    file beside the decisions file, which another holder cannot take meanwhile."""
    from filelock import FileLock, Timeout

    path = tmp_path / "cache" / "precision.json"
    other = FileLock(str(path.with_name("precision.json.lock")), timeout=0)
    with hardware.decision._file_lock(path):
        with pytest.raises(Timeout):
            other.acquire()
    other.acquire()  # released on leaving
    other.release()
