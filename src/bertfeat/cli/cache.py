"""``bertfeat cache info`` and ``bertfeat cache clear``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Any

from .. import hardware
from .common import CliError, _dir_size, _store

#: the command line's entry point is bertfeat.cli.main; this module exports nothing else
__all__: list[str] = []


def _encoded(store: Any, fingerprint: str) -> int:
    if not store:
        return 0
    return store.encoded_count(fingerprint)


# --------------------------------------------------------------------------------- cache
def _store_call(store: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """``store.<method>(...)``, with any store failure as a one-line CLI error."""
    from ..store import StoreError, store_errors

    try:
        return getattr(store, method)(*args, **kwargs)
    except (StoreError, *store_errors()) as exc:
        raise CliError(f"cannot use the feature store at {store.directory}: "
                       f"{type(exc).__name__}: {exc}") from exc


def _cmd_cache_info(args: argparse.Namespace) -> int:
    from ..store import human_bytes

    store = _store(args)
    stats = _store_call(store, "stats")
    random_dir = store.random_init_directory
    stats["random_init"] = {"directory": str(random_dir),
                            "models": sorted(p.name for p in random_dir.iterdir()
                                             if p.is_dir()) if random_dir.is_dir() else [],
                            "bytes": _dir_size(random_dir)}
    stats["precision_decisions"] = {"file": str(hardware.decisions_path()),
                                    "override": os.environ.get(hardware.ENV_PRECISION) or None,
                                    "decisions": hardware.remembered_decisions()}
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
        return 0
    print(f"feature store: {stats['directory']}")
    source = "BERTFEAT_CACHE_DIR" if os.environ.get("BERTFEAT_CACHE_DIR") and \
        not args.cache_dir else ("--cache-dir" if args.cache_dir else "default location")
    print(f"  ({source}; set BERTFEAT_CACHE_DIR or --cache-dir to use another)")
    print(f"size: {human_bytes(stats['bytes'])} of a {human_bytes(stats['size_limit'])} "
          f"limit (oldest entries are evicted beyond it)")
    print(f"texts stored: {stats['entries']:,} (all models)")
    models = stats["models"]
    if models:
        print()
        print(f"  {'fingerprint':<12}  {'model':<24}  {'kind':<5}  {'long text':<13}  "
              f"{'prec':<8}  {'max_len':>7}  {'stored':>8}  {'hits':>9}  {'misses':>8}  "
              f"{'encoded':>8}")
        for fp, info in models.items():
            print("  " + _cache_row(fp, info))
        print("  (kind: texts = one vector per text and layer; words = per-word vectors of "
              "sentences.\n   long text: truncate = first max_len tokens; chunk = windows "
              "of max_len, stride s, at most m; words: windows of stride s)")
    else:
        print("no models stored yet")
    rinfo = stats["random_init"]
    if rinfo["models"]:
        print()
        print(f"random-weights control models (bertfeat probe): {len(rinfo['models'])} "
              f"({human_bytes(rinfo['bytes'])}) in {rinfo['directory']}")
    _print_precision_decisions(stats["precision_decisions"])
    return 0


def _cache_row(fp: str, info: dict) -> str:
    """One ``cache info`` row: what tells encodings of the same model apart, and counts."""
    desc = info.get("model") or {}
    name = str(desc.get("model", "?"))
    if len(name) > 24:
        name = "..." + name[-21:]
    if desc.get("kind") == "words":
        kind, mode = "words", f"words s={desc.get('window_stride', '?')}"
        counts = [info.get("sentences", 0), info.get("sentences_hits", 0),
                  info.get("sentences_misses", 0), info.get("sentences_encoded", 0)]
    else:
        kind, mode = "texts", str(desc.get("long_text", "?"))
        if mode.startswith("chunk"):
            mode = f"chunk s={desc.get('chunk_stride', '?')} m={desc.get('max_chunks', '?')}"
        counts = [info["entries"], info["hits"], info["misses"], info["encoded"]]
    dtype = desc.get("store_dtype")  # vectors kept as float16: other vectors
    precision = str(desc.get("precision", "?")) + (",f16" if dtype == "float16" else "")
    return (f"{fp[:12]:<12}  {name:<24}  {kind:<5}  {mode:<13}  {precision:<8}  "
            f"{desc.get('max_length', '?'):>7}  {counts[0]:>8,}  {counts[1]:>9,}  "
            f"{counts[2]:>8,}  {counts[3]:>8,}")


def _print_precision_decisions(info: dict) -> None:
    """The measured ``precision="auto"`` decisions (``bertfeat cache info``)."""
    print()
    decisions = info["decisions"]
    print(f"precision='auto' decisions: {len(decisions)} in {info['file']}")
    if info["override"]:
        print(f"  overridden here by {hardware.ENV_PRECISION}={info['override']}")
    for record in sorted(decisions.values(), key=lambda r: str(r.get("decided_at"))):
        print(f"  {hardware.describe(record)}")
        if record.get("reason"):
            print(f"    why: {record['reason']}")


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    store = _store(args)
    texts = _store_call(store, "stats")["entries"]
    removed = _store_call(store, "clear", model=args.model)
    texts -= _store_call(store, "stats")["entries"]  # stored texts (of every model) that went
    if args.model is None:
        random_dir = store.random_init_directory
        if random_dir.is_dir():
            shutil.rmtree(random_dir)
        print(f"cleared the feature store at {store.directory}: {texts:,} stored texts "
              f"removed ({removed:,} database rows)")
    elif removed:
        print(f"removed {texts:,} stored texts of model {args.model!r} from "
              f"{store.directory} ({removed:,} database rows)")
    else:
        print(f"no entries for model {args.model!r} in {store.directory} (give the model "
              "spec used, its directory, or a fingerprint prefix from `bertfeat cache info`)")
    return 0
