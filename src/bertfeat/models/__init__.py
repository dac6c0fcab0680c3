"""Models: a spec resolved to files, the fingerprint of an encoding, loading, random init.

* :func:`resolve_model` (:mod:`.spec`) turns ``"default"``, a local directory or a hub id
  (+ ``revision``, :mod:`.hub`) into a :class:`ModelInfo`: a local directory plus what can
  be read from its JSON files (layers, width, length limit) *without loading any weights*;
  :mod:`.files` knows which files a model directory holds and refuses unreadable ones.
* :func:`fingerprint` (:mod:`.fingerprints`) hashes everything that changes a vector
  (weights digest, config, tokenizer files, length and truncation settings, precision,
  store format version).
* :func:`load` (:mod:`.loading`) builds the tokenizer and the model on a device and
  precision, cutting the encoder above the deepest requested layer; :func:`load_shared`
  (:mod:`.shared`) shares one loaded copy among clones; no model code runs without the
  user's opt-in (:func:`check_custom_code`, :mod:`.trust`).
* :func:`random_init_model` (:mod:`.random_init`) saves a random-weights copy.

Each function has one home module; the names here are the public API. Device and CPU
facts (:func:`resolve_device`, :func:`cpu_flags`, :func:`int8_path` ...) live in
:mod:`bertfeat.hardware`, the layer below, and are re-exported here, as before.
``resolve_precision`` was re-exported here too; it measures the model, so its home is now
the engine (:func:`bertfeat.engine.precision.resolve_precision`), a layer above this one.
For backward compatibility only, ``bertfeat.models.resolve_precision`` still imports: the
module-level ``__getattr__`` below looks it up there on first access (so importing this
package never imports the engine); it is not in ``__all__`` and nothing in bertfeat uses
that old path. A test that replaces a function patches the module that calls it looks it
up in: the home module for calls inside this package, ``bertfeat.models`` for callers that
use the package's name.
"""

from __future__ import annotations

from .._compat import forwarding
from ..hardware import FAST_INT8_PATHS, PRECISIONS, cpu_flags, int8_path, resolve_device
from ..store import STORE_FORMAT
from .files import model_file_names, tokenizer_files, weight_files
from .fingerprints import (
    ModelChangedError,
    checked_fingerprint,
    file_digest,
    file_signature,
    fingerprint,
    model_signature,
    weights_stat,
)
from .hub import cached_hub_ids, near_model_specs
from .loading import (
    load,
    load_tokenizer,
    load_trainable,
    quiet_transformers,
    transformer_layers,
)
from .random_init import random_init_model
from .shared import MAX_LOADED, forget_loaded, load_count, load_shared
from .spec import DEFAULT_MODEL_PACKAGE, ModelInfo, resolve_model
from .trust import check_custom_code, opted_in

__all__ = [
    "DEFAULT_MODEL_PACKAGE",
    "FAST_INT8_PATHS",
    "MAX_LOADED",
    "PRECISIONS",
    "STORE_FORMAT",
    "ModelChangedError",
    "ModelInfo",
    "cached_hub_ids",
    "check_custom_code",
    "checked_fingerprint",
    "cpu_flags",
    "file_digest",
    "file_signature",
    "fingerprint",
    "forget_loaded",
    "int8_path",
    "load",
    "load_count",
    "load_shared",
    "load_tokenizer",
    "load_trainable",
    "model_file_names",
    "model_signature",
    "near_model_specs",
    "opted_in",
    "quiet_transformers",
    "random_init_model",
    "resolve_device",
    "resolve_model",
    "tokenizer_files",
    "transformer_layers",
    "weight_files",
    "weights_stat",
]

#: a name exported here before its home moved above this layer -> that home; for backward
#: compatibility only (see the module docstring)
_MOVED_UP = {"resolve_precision": "bertfeat.engine.precision"}

__getattr__, __dir__ = forwarding(__name__, _MOVED_UP, globals())
