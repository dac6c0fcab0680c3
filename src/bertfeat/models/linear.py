"""Faster CPU linear layers for the encoder: bf16 without the bias copy, and dynamic int8.

Both are swapped into a loaded model by :func:`bertfeat.models.load`; each checks on a tiny
input that the kernel it relies on exists and agrees with :func:`torch.nn.functional.linear`
before it is used, so an older or newer torch without it falls back to the plain layer.

* :class:`Bf16Linear` calls oneDNN's linear with the bias as a post-op. ``nn.Linear`` on
  a bf16 CPU tensor goes through ``addmm``, which first copies the bias into every output
  row and then accumulates the product on top; skipping that copy makes the linear layers
  about a fifth faster (``benchmarks/bench_encode.py``).
* :class:`Int8Linear` is dynamic int8 quantization with one scale per token (row) for the
  activations and one per output channel for the weights, multiplied by ``torch._int_mm``
  with exact int32 accumulation. Per-token scales keep a text's vector independent of the
  other texts in its batch and much closer to fp32 than ``torch.ao``'s per-tensor dynamic
  quantization (which is also deprecated). ``torch._int_mm`` runs oneDNN's s8s8 GEMM,
  which uses the CPU's int8 dot-product instructions (AMX, AVX512-VNNI, AVX-VNNI) when it
  has them. End to end, per-token int8 was measured faster than fp32 only with AMX, so
  :func:`bertfeat.hardware.requested_precision` refuses it elsewhere
  (:data:`bertfeat.models.FAST_INT8_PATHS`).
"""

from __future__ import annotations

import torch

__all__ = ["Bf16Linear", "Int8Linear", "use_bf16_linear", "quantize_int8"]


def _pointwise(x, weight, bias):
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class Bf16Linear(torch.nn.Linear):
    """``nn.Linear`` whose forward is oneDNN's linear with a fused bias (bf16 on CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.dtype != torch.bfloat16 or x.device.type != "cpu" or x.requires_grad:
            return super().forward(x)
        return _pointwise(x, self.weight, self.bias)


def _bf16_kernel_works() -> bool:
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(3, 5, 16, generator=gen).to(torch.bfloat16)
        w = torch.randn(24, 16, generator=gen).to(torch.bfloat16)
        b = torch.randn(24, generator=gen).to(torch.bfloat16)
        with torch.inference_mode():
            got = _pointwise(x, w, b).float()
            want = torch.nn.functional.linear(x, w, b).float()
        return got.shape == want.shape and bool(torch.allclose(got, want, rtol=0.02, atol=0.05))
    except Exception:  # the private op is missing or refuses these inputs
        return False


def use_bf16_linear(model: torch.nn.Module) -> int:
    """Turn every plain ``nn.Linear`` of a bf16 CPU model into :class:`Bf16Linear`.

    Returns the number of layers changed (0 when the kernel is not available).
    """
    if not _bf16_kernel_works():
        return 0
    changed = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.dtype == torch.bfloat16:
            module.__class__ = Bf16Linear
            changed += 1
    return changed


class Int8Linear(torch.nn.Module):
    """Dynamic int8 linear layer: per-token activation scales, per-channel weight scales.

    Parameters
    ----------
    linear : torch.nn.Linear
        The float layer to quantize; its weights are rounded to int8 once.
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        qweight = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.register_buffer("qweight_t", qweight.t().contiguous())  # (in, out)
        self.register_buffer("weight_scale", scale)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float()
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_(min=1e-12).div_(127.0)
        q = rows.div(scale).round_().to(torch.int8)
        out = torch._int_mm(q, self.qweight_t).to(torch.float32)
        out.mul_(scale).mul_(self.weight_scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def _int8_kernel_works() -> bool:
    try:
        a = torch.randint(-127, 128, (3, 16), dtype=torch.int8)
        b = torch.randint(-127, 128, (16, 8), dtype=torch.int8)
        return bool(torch.equal(torch._int_mm(a, b), a.int() @ b.int()))
    except Exception:
        return False


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every ``nn.Linear`` of a float32 CPU model by :class:`Int8Linear`.

    Falls back to ``torch.ao.quantization.quantize_dynamic`` (per-tensor activation scales)
    where ``torch._int_mm`` is not available on the CPU.
    """
    if not _int8_kernel_works():  # pragma: no cover - every torch bertfeat supports has it
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                          dtype=torch.qint8)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, Int8Linear(child))
    return model
