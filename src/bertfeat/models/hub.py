"""Hub ids: a snapshot from the local Hugging Face cache (offline first), and, for a spec
that names no model, the known specs close to it.

A spec close to ``"default"`` or to a local model folder is a typo: no download is tried.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["cached_hub_ids", "near_model_specs"]


def _hub_snapshot(repo_id: str, revision: str | None) -> Path:
    """Local snapshot of a hub model (downloaded once, then served from the HF cache)."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "*.model", "*.safetensors", "*.bin"]
    try:  # offline first: a cached snapshot needs no network
        return Path(
            snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                              local_files_only=True)
        )
    except Exception:
        pass
    near = near_model_specs(repo_id)
    if near and not _looks_like_hub_id(near[0]):
        # a typo of 'default' or of a local folder: no download is tried
        raise OSError(_not_found(repo_id, near, None))
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as exc:
        raise OSError(_not_found(repo_id, near, exc, revision)) from exc


def _hub_cache_dir() -> Path:
    """The Hugging Face hub cache (``HF_HUB_CACHE`` / ``HF_HOME`` aware)."""
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - an old or odd huggingface_hub
        return Path.home() / ".cache" / "huggingface" / "hub"


def cached_hub_ids() -> list[str]:
    """Hub ids with a snapshot in the local Hugging Face cache (no network).

    Returns
    -------
    list of str
        Sorted hub ids (``owner/name``).
    """
    root = _hub_cache_dir()
    try:
        names = [p.name for p in root.iterdir() if p.name.startswith("models--")]
    except OSError:
        return []
    return sorted(n[len("models--"):].replace("--", "/") for n in names)


def _local_model_dirs() -> list[str]:
    """Folders of the working directory that hold a model (a config.json)."""
    try:
        return sorted(p.name for p in Path.cwd().iterdir()
                      if p.is_dir() and (p / "config.json").is_file())
    except OSError:
        return []


def _looks_like_hub_id(spec: str) -> bool:
    return spec not in ("default", *_local_model_dirs())


def near_model_specs(spec: str, n: int = 3) -> list[str]:
    """Known model specs close to ``spec`` (closest first; :mod:`difflib`).

    Parameters
    ----------
    spec : str
        A model spec that names no model.
    n : int, default=3
        Most specs returned.

    Returns
    -------
    list of str
        Among ``"default"``, the local model folders of the working directory and the hub
        ids in the local cache.
    """
    import difflib

    known = list(dict.fromkeys(["default", *_local_model_dirs(), *cached_hub_ids()]))
    lowered = {k.lower(): k for k in known}
    near = difflib.get_close_matches(spec.lower(), list(lowered), n=n, cutoff=0.75)
    # also a match on the name alone: 'minilm-l6' for 'sentence-transformers/...-MiniLM-L6'
    tail = spec.lower().rsplit("/", 1)[-1]
    by_tail = {k.rsplit("/", 1)[-1]: k for k in lowered}
    near += [by_tail[t] for t in difflib.get_close_matches(tail, list(by_tail), n=n,
                                                          cutoff=0.85)]
    return [lowered[k] for k in dict.fromkeys(near) if lowered[k] != spec][:n]


def _not_found(spec: str, near: list[str], exc: Exception | None,
               revision: str | None = None) -> str:
    """Why ``spec`` is no model: the closest known specs, what was looked at offline."""
    hint = ""
    if near:
        hint = "did you mean " + " or ".join(repr(n) for n in near) + "? "
    cached = cached_hub_ids()
    tried = (f"looked for a local folder {str(Path(spec).expanduser().absolute())!r} (none), "
             f"and for a snapshot in the Hugging Face cache {str(_hub_cache_dir())!r} (none; "
             f"{len(cached)} cached model{'s' if len(cached) != 1 else ''}"
             + (f": {', '.join(cached[:5])}{' ...' if len(cached) > 5 else ''}" if cached
                else "") + ")")
    if exc is None:
        return (f"model {spec!r} not found: {hint}Offline, bertfeat {tried}; it is close to "
                "a model known here, so no download was tried. model='default' is the "
                "bundled all-MiniLM-L6-v2.")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"Could not load model {spec!r} (revision={revision!r}): {hint}Offline, bertfeat "
            f"{tried}; fetching it from the Hugging Face hub failed ({type(exc).__name__}: "
            f"{reason[:200]}). Check the name, your network, or pass a local directory; "
            "model='default' works offline.")

