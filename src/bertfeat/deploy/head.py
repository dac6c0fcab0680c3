"""The scikit-learn steps after the featurizer as one ONNX graph (``head.onnx``, skl2onnx).

A classifier's graph predicts the class *index*, and the runtime maps it to the label, so
labels keep their exact values and dtype. A ``TransformedTargetRegressor`` with a
``StandardScaler`` target transformer (the probe's SVM and MLP regression heads) is
exported as its inner regressor, and the runtime undoes the scaling of its predictions.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from .graph import OPSET
from .report import ExportError

__all__ = ["check_head_steps", "export_head"]


def check_head_steps(steps: list[tuple[str, Any]]) -> None:
    """Fail before the slow encoder export when a head step has no converter.

    Parameters
    ----------
    steps : list of (str, estimator)
        The pipeline's steps after its first.

    Raises
    ------
    ExportError
        Naming the first step skl2onnx cannot convert.
    """
    for name, step in steps:
        if step is None or step == "passthrough":
            continue
        if not _has_converter(step):
            raise ExportError(
                f"pipeline step {name!r} ({type(step).__name__}) has no ONNX converter in "
                "skl2onnx, so the pipeline cannot be exported; steps that can include "
                "StandardScaler, PCA, LogisticRegression, LinearSVC, SVC, MLPClassifier, "
                "Ridge (see skl2onnx.supported_converters())")


def _has_converter(step: Any) -> bool:
    """Whether skl2onnx (with any converter registered by the user) can convert ``step``."""
    if _target_scaler(step) is not None:  # exported as its regressor + a rescaling
        return _has_converter(step.regressor_)
    try:  # the registry itself: class -> converter alias (LogisticRegression ->
        # "SklearnLinearClassifier"), including update_registered_converter() additions
        from skl2onnx._supported_operators import sklearn_operator_name_map
    except ImportError:  # pragma: no cover - a skl2onnx that moved it: try converting
        return True
    return type(step) in sklearn_operator_name_map


def _target_scaler(step: Any) -> dict[str, Any] | None:
    """``{"mean", "scale"}`` of a fitted ``TransformedTargetRegressor`` whose target
    transformer is a ``StandardScaler`` (the probe's SVM and MLP regression heads), else
    None: such a step is exported as its inner regressor, and the runtime undoes the
    scaling of its predictions (skl2onnx has no converter for the wrapper)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    if not isinstance(step, TransformedTargetRegressor) or not hasattr(step, "regressor_"):
        return None
    scaler = step.transformer_
    if type(scaler) is not StandardScaler:
        return None
    return {"mean": None if scaler.mean_ is None else float(scaler.mean_[0]),
            "scale": None if scaler.scale_ is None else float(scaler.scale_[0])}


def export_head(steps: list[tuple[str, Any]], width: int, path: Path) -> dict[str, Any]:
    """Convert the scikit-learn steps after the featurizer to one ONNX graph.

    Parameters
    ----------
    steps : list of (str, estimator)
        The pipeline's steps after its first (fitted).
    width : int
        Columns of the first step's output (the graph's input).
    path : Path
        The ``.onnx`` file to write.

    Returns
    -------
    dict
        The manifest's ``head`` entry: input dtype, output names and what they mean.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn.pipeline import Pipeline

    check_head_steps(steps)
    tail = Pipeline([(n, s) for n, s in steps if s is not None and s != "passthrough"])
    last = tail.steps[-1][1]
    target = _target_scaler(last)
    if target is not None:
        last = last.regressor_
        tail = Pipeline(tail.steps[:-1] + [(tail.steps[-1][0], last)])
    classes = np.asarray(last.classes_) if hasattr(last, "classes_") else None
    if classes is not None:
        # the graph predicts the class *index*; the runtime maps it to the label. Labels
        # then keep their exact values and dtype (skl2onnx stores integer labels as
        # int32 in places: 10**12 came back as -727379968), strings and bools included
        tail = copy.deepcopy(tail)
        last = tail.steps[-1][1]
        try:
            last.classes_ = np.arange(len(classes))
        except AttributeError as exc:  # a read-only classes_
            raise ExportError(f"pipeline step {tail.steps[-1][0]!r} "
                              f"({type(last).__name__}): its classes_ cannot be set to "
                              f"class indices for the export ({exc})") from exc
    options = {id(last): {"zipmap": False}} if classes is not None else None
    errors = []
    # double first: scikit-learn computes the head in float64, and so does this graph;
    # float32 where onnxruntime has no double kernel for an operator (SVMRegressor)
    for dtype, kind in ((DoubleTensorType, "float64"), (FloatTensorType, "float32")):
        try:
            onx = to_onnx(tail, initial_types=[("features", dtype([None, width]))],
                          options=options, target_opset={"": OPSET, "ai.onnx.ml": 3})
            _loadable(onx)
            break
        except Exception as exc:  # noqa: BLE001 - a converter may refuse one dtype
            errors.append(f"{kind}: {type(exc).__name__}: {exc}")
    else:
        raise ExportError(f"the scikit-learn steps {[n for n, _ in steps]} could not be "
                          f"converted to ONNX: {'; '.join(errors)}")
    path.write_bytes(onx.SerializeToString())
    outputs = [o.name for o in onx.graph.output]
    entry: dict[str, Any] = {"file": path.name, "input_dtype": kind, "outputs": outputs,
                             "steps": [[n, type(s).__name__] for n, s in tail.steps]}
    if classes is not None:
        entry["classes"] = classes.tolist()
        entry["classes_dtype"] = classes.dtype.str if classes.dtype != object else "object"
        entry["label_is_index"] = True
        entry["label"] = outputs[0]
        entry["scores"] = outputs[1] if len(outputs) > 1 else None
        entry["proba"] = bool(hasattr(last, "predict_proba") and _has_proba(last))
    elif hasattr(last, "predict") and not hasattr(last, "transform"):
        entry["prediction"] = outputs[0]
        if target is not None:
            entry["target_scaler"] = target
    else:
        entry["transform"] = outputs[0]
    return entry


def _loadable(onx) -> None:
    """Raise unless onnxruntime has a kernel for every operator of the graph."""
    import onnxruntime as ort

    ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])


def _has_proba(estimator) -> bool:
    try:
        return callable(estimator.predict_proba)
    except AttributeError:  # SVC(probability=False) hides it
        return False
