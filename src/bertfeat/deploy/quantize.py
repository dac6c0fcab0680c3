"""Per-token dynamic int8 for the exported encoder graph (``precision="int8"``).

Every matrix product with a weight matrix becomes an int8 product: one scale per token
row and one per output channel, int32 accumulation (the scheme of
:mod:`bertfeat.models.linear`). The export prints its cosine to the fp32 graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .report import ExportError

__all__ = ["quantize_graph"]


def quantize_graph(src: Path, dst: Path) -> int:
    """Per-token dynamic int8 for every ``MatMul``/``Gemm`` with a constant weight.

    Each such product ``x @ W`` becomes ``(q(x) @ q(W)) * s_x * s_W``: ``q(W)`` int8 with
    one scale per output channel (computed once, stored), ``q(x)`` int8 with one scale per
    row of ``x`` (per token, computed in the graph), ``MatMulInteger`` accumulating in int32.

    Parameters
    ----------
    src : Path
        The fp32 graph.
    dst : Path
        Where the int8 graph is written.

    Returns
    -------
    int
        The number of products rewritten.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    new_nodes, new_inits, count = [], [], 0
    shared = {"q_eps": np.array(1e-12, np.float32), "q_127": np.array(127.0, np.float32),
              "q_lo": np.array(-127.0, np.float32), "q_axes": np.array([-1], np.int64),
              "q_128": np.array(128.0, np.float32), "q_zp": np.array(128, np.uint8),
              "q_one": np.array(1.0, np.float32)}
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for name, value in shared.items():
        new_inits.append(numpy_helper.from_array(value, name))
    for node in graph.node:
        weight_name = node.input[1] if len(node.input) > 1 else None
        gemm_ok = node.op_type == "Gemm" and not any(
            a.name == "transA" and a.i for a in node.attribute)
        if node.op_type not in ("MatMul", "Gemm") or (node.op_type == "Gemm" and not gemm_ok) \
                or weight_name not in inits:
            new_nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[weight_name]).astype(np.float32)
        if weight.ndim != 2:
            new_nodes.append(node)
            continue
        trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        if trans_b:
            weight = weight.T  # (in, out)
        for attr in node.attribute:
            if attr.name in ("alpha", "beta") and abs(attr.f - 1.0) > 0:
                raise ExportError(f"int8: Gemm node {node.name} has {attr.name}={attr.f}")
        scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127.0
        qweight = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        p = f"q{count}_"
        new_inits += [numpy_helper.from_array(qweight, p + "w"),
                      numpy_helper.from_array(scale.astype(np.float32), p + "ws")]
        x, out = node.input[0], node.output[0]
        bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else ""
        new_nodes += [
            helper.make_node("Abs", [x], [p + "abs"]),
            helper.make_node("ReduceMax", [p + "abs", "q_axes"], [p + "amax"], keepdims=1)
            if opset >= 18 else
            helper.make_node("ReduceMax", [p + "abs"], [p + "amax"], axes=[-1], keepdims=1),
            helper.make_node("Max", [p + "amax", "q_eps"], [p + "amax1"]),
            helper.make_node("Div", [p + "amax1", "q_127"], [p + "xs"]),   # row scale
            helper.make_node("Div", ["q_127", p + "amax1"], [p + "inv"]),
            helper.make_node("Mul", [x, p + "inv"], [p + "xd"]),            # |x| <= 127
            # shifted to uint8 around a zero point of 128 (128 is even, so rounding is
            # unchanged): onnxruntime's fastest x86 int8 kernels take unsigned activations
            # and signed weights (U8S8)
            helper.make_node("Add", [p + "xd", "q_128"], [p + "xu"]),
            helper.make_node("Round", [p + "xu"], [p + "xr"]),
            helper.make_node("Cast", [p + "xr"], [p + "xq"], to=TensorProto.UINT8),
            # int32 accumulation, times the per-channel weight scales, in one kernel
            helper.make_node("MatMulIntegerToFloat",
                             [p + "xq", p + "w", "q_one", p + "ws", "q_zp"], [p + "y1"],
                             domain="com.microsoft"),
        ]
        if bias:
            new_nodes += [helper.make_node("Mul", [p + "y1", p + "xs"], [p + "y2"]),
                          helper.make_node("Add", [p + "y2", bias], [out])]
        else:
            new_nodes.append(helper.make_node("Mul", [p + "y1", p + "xs"], [out]))
        count += 1
    used = {i for n in new_nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + [i for i in new_inits if i.name in used])
    if count and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return count
