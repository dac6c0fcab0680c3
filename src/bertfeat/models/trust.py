"""The trust policy: no code shipped with a model runs unless the user opts in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spec import ModelInfo

__all__ = ["check_custom_code", "opted_in"]


def opted_in(trust_remote_code: Any) -> bool:
    """``trust_remote_code`` as a bool; only a real boolean counts (``"no"`` is not False).

    Checked here as well as in the estimators' parameter validation, so a skipped
    validation (``sklearn.set_config(skip_parameter_validation=True)``) can never turn a
    string into permission to run a model's code.

    Parameters
    ----------
    trust_remote_code : bool
        The user's opt-in.

    Returns
    -------
    bool

    Raises
    ------
    InvalidParameterError
        When it is not a boolean.
    """
    import numpy as np
    from sklearn.utils._param_validation import InvalidParameterError

    if not isinstance(trust_remote_code, (bool, np.bool_)):
        raise InvalidParameterError(
            f"trust_remote_code must be True or False, got {trust_remote_code!r}; no model "
            "code runs unless it is the boolean True")
    return bool(trust_remote_code)


def check_custom_code(info: ModelInfo, trust_remote_code: bool = False) -> None:
    """Refuse, before anything loads, a model that only works by running its own code.

    A model whose ``model_type`` transformers does not know can only be built from the
    Python files shipped with it (its config's ``auto_map``). Unless the user opts in,
    bertfeat runs none of it. Known types load with transformers' own classes, whatever
    ``auto_map`` says.

    Parameters
    ----------
    info : ModelInfo
        The resolved model.
    trust_remote_code : bool
        The user's opt-in.

    Raises
    ------
    ValueError
        When the model needs its own code and ``trust_remote_code`` is False.
    """
    if opted_in(trust_remote_code):
        return
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if info.model_type in CONFIG_MAPPING_NAMES:
        return
    auto_map = info.config.get("auto_map")
    shipped = f" (its auto_map names {sorted(auto_map)})" if isinstance(auto_map, dict) else ""
    raise ValueError(
        f"model={info.spec!r} is of type {info.model_type!r}, which transformers does not "
        f"know{shipped}: it can only be built by running the Python code shipped with it. "
        "bertfeat runs no model code unless you pass trust_remote_code=True; do that only "
        "for a source you trust."
    )

