"""Issue 17: ``precision="int8"`` only where the CPU has a fast int8 path (faked flags).

The kernel path follows the CPU's features: AMX, AVX512-VNNI or AVX-VNNI give int8 dot
products; an AVX2-only CPU has none. int8 was measured faster than fp32 only with AMX, so
everywhere else it is refused with a message that says why and what to use. ``"auto"``
never picks int8 (its fidelity is below the 0.999 rule).
"""

from __future__ import annotations

import pytest

from bertfeat import BertFeaturizer, hardware, models

AVX2_ONLY = frozenset({"fpu", "sse4_1", "sse4_2", "avx", "avx2", "fma"})


@pytest.fixture(autouse=True)
def _no_isa_cap(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


@pytest.mark.parametrize("extra, path", [
    ({"amx_int8", "amx_tile", "avx512_vnni"}, "amx"),
    ({"avx512f", "avx512_vnni"}, "avx512_vnni"),
    ({"avx_vnni"}, "avx_vnni"),
    ({"avx512f", "avx512bw"}, None),
    (set(), None),
])
def test_int8_path_follows_cpu_flags(extra, path):
    assert models.int8_path(AVX2_ONLY | extra) == path


def test_onednn_isa_cap_turns_the_fast_path_off(monkeypatch):
    flags = AVX2_ONLY | {"avx512_vnni", "avx_vnni"}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert models.int8_path(flags) is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2_VNNI")
    assert models.int8_path(flags) == "avx_vnni"


def test_int8_is_refused_without_a_fast_path(monkeypatch, tiny_model):
    monkeypatch.setattr(hardware.machine, "cpu_flags", lambda: AVX2_ONLY)
    with pytest.raises(ValueError, match=r"AMX.*no int8 dot-product.*avx2.*'fp32'.*export"):
        hardware.requested_precision("int8", "cpu")
    with pytest.raises(ValueError, match="39x slower"):
        BertFeaturizer(model=tiny_model, precision="int8", device="cpu", cache=False).fit(["x"])


def test_int8_is_refused_with_vnni_but_no_amx(monkeypatch):
    monkeypatch.setattr(hardware.machine, "cpu_flags",
                        lambda: AVX2_ONLY | {"avx512_vnni", "avx_vnni"})
    with pytest.raises(ValueError, match="int8 path is avx512_vnni without AMX"):
        hardware.requested_precision("int8", "cpu")


def test_int8_is_accepted_with_amx(monkeypatch, tiny_model):
    monkeypatch.setattr(hardware.machine, "cpu_flags",
                        lambda: AVX2_ONLY | {"avx512_vnni", "amx_int8"})
    feat = BertFeaturizer(model=tiny_model, precision="int8", device="cpu", cache=False)
    assert feat.fit(["x"]).precision_ == "int8"


@pytest.mark.parametrize("flags", [AVX2_ONLY, AVX2_ONLY | {"avx512_vnni", "amx_int8"}])
def test_auto_never_picks_int8(monkeypatch, flags):
    monkeypatch.setattr(hardware.machine, "cpu_flags", lambda: flags)
    assert "int8" not in hardware.candidates("cpu")


def test_cpu_flags_reads_cpuinfo(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx_vnni\n")
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(
        info if str(path) == "/proc/cpuinfo" else path, *a, **k))
    assert models.cpu_flags() == frozenset({"fpu", "avx2", "avx_vnni"})
    assert hardware.cpu_flags is models.cpu_flags  # one home for reading them
