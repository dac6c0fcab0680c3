"""The store's value format: digests, arrays behind a small header, index rows.

Nothing here is ever pickled or unpickled: values are raw bytes, ``str`` or ``int``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["STORE_FORMAT", "STORE_DTYPES", "CorruptValue", "Lookup", "WordLookup", "encode_array",
           "decode_array", "text_digest", "sentence_digest", "human_bytes"]

#: bump when the meaning of stored vectors changes (part of every fingerprint)
STORE_FORMAT = 1

#: storage dtypes of vectors; float16 halves the bytes per text (fidelity measured in
#: benchmarks/bench_store.py)
STORE_DTYPES = ("float32", "float16")

_FLOAT16_MAX = float(np.finfo(np.float16).max)
_MAGIC = b"BFS1"
_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f2")}
_DTYPE_CODES = {v: k for k, v in _DTYPES.items()}
_INDEX = struct.Struct("<16sIHB")  # block id, row, depth, flags (1 pooler, 2 truncated)
_READ_CHUNK = 2048
#: bytes a stored text or sentence costs beyond its vectors (its index row), counted
#: toward the size limit
ROW_BYTES = _INDEX.size + 64


class CorruptValue(ValueError):
    """A stored value whose header or size does not match what was expected."""



def human_bytes(n: float) -> str:
    """``n`` bytes for people: ``512 B``, ``1.5 MB`` ... (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


_human = human_bytes


def _round_up(n: int) -> str:
    """``n`` bytes rounded up to a whole GiB (at least 1), as Python source."""
    return f"{max(1, -(-n // 2**30))} * 2**30"


def _to_storage(array: np.ndarray) -> np.ndarray:
    """float16 copy of a float32 array, or the array itself when float16 cannot hold it."""
    finite = np.isfinite(array)
    if not finite.all() or (array.size and float(np.abs(array).max()) > _FLOAT16_MAX):
        return array
    return array.astype(np.float16)



def text_digest(text: str) -> str:
    """128-bit BLAKE2b digest of a text (lone surrogates included), as hex."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def encode_array(array: np.ndarray) -> bytes:
    """Raw bytes of an array behind a header: magic, dtype code, ndim, shape."""
    array = np.ascontiguousarray(array)
    code = _DTYPE_CODES[array.dtype.newbyteorder("<")]
    header = _MAGIC + struct.pack("<BB", code, array.ndim) + struct.pack(
        f"<{array.ndim}I", *array.shape)
    return header + array.astype(_DTYPES[code], copy=False).tobytes()


def decode_array(blob: Any, trailing: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`encode_array`, checking the header against the expected shape.

    Parameters
    ----------
    blob : bytes
        Stored value.
    trailing : tuple of int
        Expected shape after the first axis.

    Raises
    ------
    CorruptValue
        If anything about the value is off.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) < 6:
        raise CorruptValue("value is not a bertfeat array")
    blob = bytes(blob)
    if blob[:4] != _MAGIC:
        raise CorruptValue("bad magic")
    code, ndim = struct.unpack_from("<BB", blob, 4)
    if code not in _DTYPES or ndim != len(trailing) + 1:
        raise CorruptValue("bad dtype or ndim")
    shape = struct.unpack_from(f"<{ndim}I", blob, 6)
    if tuple(shape[1:]) != tuple(trailing):
        raise CorruptValue(f"shape {shape} does not end in {trailing}")
    offset = 6 + 4 * ndim
    dtype = _DTYPES[code]
    if len(blob) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise CorruptValue("size does not match the header")
    return np.frombuffer(blob, dtype=dtype, offset=offset).reshape(shape)



@dataclass
class Lookup:
    """Result of :meth:`FeatureStore.read`.

    Attributes
    ----------
    found : ndarray of bool, shape (n,)
        Which texts were read from the store.
    stats : dict of int -> ndarray (n, 3, hidden)
        Per requested layer; rows of texts not found are zero.
    pooler : ndarray (n, hidden) or None
    truncated : ndarray of bool, shape (n,)
        Found texts that were truncated when they were encoded.
    """

    found: np.ndarray
    stats: dict[int, np.ndarray]
    pooler: np.ndarray | None
    truncated: np.ndarray


# ----------------------------------------------------------- per-word records (words.py)
_WORD_MAGIC = b"BFW1"
#: magic, depth, words; then uint32 pieces per word and a uint8 flags byte per word
_WORD_INDEX = struct.Struct("<4sHI")


def sentence_digest(words: Sequence[str]) -> str:
    """128-bit digest of a pre-tokenised sentence (its words and their boundaries)."""
    return text_digest(json.dumps(list(words), ensure_ascii=False))


def _piece_array(array: np.ndarray) -> np.ndarray:
    """Piece vectors as stored: float16, or float32 where a value exceeds float16's range
    (the word pass decides, :func:`bertfeat.word_pass.storable_pieces`)."""
    array = np.asarray(array)
    return array if array.dtype in (np.float16, np.float32) else array.astype(np.float16)


def _encode_word_index(depth: int, counts: np.ndarray, flags: np.ndarray) -> bytes:
    counts = np.asarray(counts, dtype="<u4")
    return (_WORD_INDEX.pack(_WORD_MAGIC, depth, len(counts)) + counts.tobytes()
            + np.asarray(flags, dtype=np.uint8).tobytes())


def _decode_word_index(value: Any) -> tuple[int, np.ndarray, np.ndarray]:
    if not isinstance(value, bytes) or len(value) < _WORD_INDEX.size:
        raise CorruptValue("not a word index row")
    magic, depth, n = _WORD_INDEX.unpack_from(value)
    if magic != _WORD_MAGIC or len(value) != _WORD_INDEX.size + 5 * n:
        raise CorruptValue("bad word index row")
    counts = np.frombuffer(value, dtype="<u4", count=n, offset=_WORD_INDEX.size)
    flags = np.frombuffer(value, dtype=np.uint8, count=n, offset=_WORD_INDEX.size + 4 * n)
    if n and int(counts.min()) < 1:
        raise CorruptValue("a word without pieces")
    return int(depth), counts.astype(np.int64), flags.copy()


@dataclass
class WordLookup:
    """Result of :meth:`FeatureStore.read_words`.

    Attributes
    ----------
    found : ndarray of bool, shape (n,)
        Which sentences were read from the store.
    counts : list of (ndarray of int64 or None)
        Pieces per word of each found sentence.
    flags : list of (ndarray of uint8 or None)
        Flags byte per word of each found sentence.
    vectors : dict of int -> list of (ndarray (n_pieces, hidden) float16 or None)
        Per requested layer, each found sentence's piece vectors.
    """

    found: np.ndarray
    counts: list
    flags: list
    vectors: dict
