"""Compact id -> row maps for indexes of millions of faces.

Why: a Python ``dict[str, int]`` costs about 100-150 bytes per face id (an
85-byte str object for a UUID, an int object, a hash slot), and an index
needs the map both ways, so at 10M faces the id maps alone took about 2 GB
and loading them meant creating 20M Python objects. Here an id is a
fixed-width byte key in numpy arrays: 16 bytes for a canonical UUID string
(what the service mints as FaceId), ``len(utf-8) + 1`` bytes otherwise. One
array holds each row's key (row -> id), and a sorted copy of the live keys
with their rows answers id -> row by binary search: about 36 bytes per face
in UUID mode (360 MB at 10M), and a saved map loads as three array reads.

Writes go to a small ``dict`` of recent changes first, merged into the
sorted arrays once it holds :data:`MERGE_FRACTION` of the map (at least
:data:`MERGE_MIN` keys): a merge copies the sorted arrays once (about 0.3 s
at 10M), so adds and removals cost amortised O(1) plus a dict operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Rows = npt.NDArray[np.int64]
UUID_BYTES = 16
MERGE_MIN = 4096
MERGE_FRACTION = 1 / 32
CHUNK = 1 << 18
"""Ids encoded per vectorised step: bounds the temporary unicode array (36 MB)."""
_TERMINATOR = b"\xff"
"""Ends every text key: never part of UTF-8, so NUL padding cannot make two ids equal."""
_HEX_VALUE = np.full(128, 255, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HYPHENS = [8, 13, 18, 23]
_HEX_COLUMNS = [i for i in range(36) if i not in _HYPHENS]


def uuid_keys(ids: Sequence[str]) -> npt.NDArray[np.bytes_] | None:
    """The 16-byte keys of ``ids``, or None unless every one is a canonical UUID string.

    Canonical: 36 characters, lowercase hex and hyphens at 8-13-18-23, as
    ``str(uuid.UUID(...))`` writes it, so decoding gives back the same text.
    Vectorised: about 0.3 s per million ids.
    """
    out = np.empty(len(ids), dtype=f"S{UUID_BYTES}")
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        text = np.array(chunk, dtype=np.str_) if len(chunk) else np.empty(0, "U36")
        if text.dtype != np.dtype("U36"):  # some id is longer or every id shorter
            return None
        codes = text.view(np.uint32).reshape(len(chunk), 36)
        if (codes[:, _HYPHENS] != ord("-")).any() or (codes >= 128).any():
            return None
        nibbles = _HEX_VALUE[codes[:, _HEX_COLUMNS]]
        if (nibbles == 255).any():
            return None
        packed = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2])
        out[start : start + len(chunk)] = packed.view(f"S{UUID_BYTES}").ravel()
    return out


def uuid_strings(keys: npt.NDArray[Any]) -> list[str]:
    """The canonical UUID strings of 16-byte keys (the inverse of :func:`uuid_keys`)."""
    raw = np.ascontiguousarray(keys).view(np.uint8).reshape(len(keys), UUID_BYTES)
    digits = np.empty((len(keys), 36), dtype=np.uint8)
    digits[:, _HYPHENS] = ord("-")
    digits[:, _HEX_COLUMNS[0::2]] = _HEX_DIGITS[raw >> 4]
    digits[:, _HEX_COLUMNS[1::2]] = _HEX_DIGITS[raw & 15]
    strings: list[str] = digits.view("S36").ravel().astype("U36").tolist()
    return strings


def text_keys(ids: Sequence[str], width: int = 0) -> npt.NDArray[np.bytes_]:
    """UTF-8 keys with a terminator, in a byte array at least ``width`` wide."""
    encoded = [i.encode() + _TERMINATOR for i in ids]
    longest = max((len(e) for e in encoded), default=1)
    return np.array(encoded, dtype=f"S{max(width, longest)}")


def text_strings(keys: npt.NDArray[Any]) -> list[str]:
    return [bytes(k)[:-1].decode() for k in keys.tolist()]


class KeyMap:
    """Ids of the rows ``0..rows-1`` of an index; a removed row keeps its key but maps no more.

    ``mode`` is ``"uuid"`` while every id so far is a canonical UUID (16-byte
    keys), else ``"text"``; the first other id converts the map, once.
    """

    def __init__(self) -> None:
        self.mode = "uuid"
        self._keys: npt.NDArray[np.bytes_] = np.empty(0, dtype=f"S{UUID_BYTES}")
        self._rows = 0
        self._live = 0
        self._sorted_keys: npt.NDArray[np.bytes_] = self._keys.copy()
        self._sorted_rows: Rows = np.empty(0, dtype=np.int64)
        self._recent: dict[bytes, int] = {}
        """Key -> row since the last merge; -1: removed though still in the sorted arrays."""

    @classmethod
    def from_ids(cls, ids: Sequence[str]) -> KeyMap:
        """Rows ``0..len(ids)-1`` in one step; ValueError if an id repeats."""
        keymap = cls()
        keys = uuid_keys(ids)
        if keys is None:
            keymap.mode = "text"
            keys = text_keys(ids)
        keymap._keys, keymap._rows, keymap._live = keys, len(ids), len(ids)
        order = np.argsort(keys, kind="stable")
        keymap._sorted_keys, keymap._sorted_rows = keys[order], order.astype(np.int64)
        if len(keys) > 1 and (keymap._sorted_keys[1:] == keymap._sorted_keys[:-1]).any():
            raise ValueError("duplicate ids")
        return keymap

    def __len__(self) -> int:
        return self._live

    @property
    def rows(self) -> int:
        """Rows handed out so far, removed ones included."""
        return self._rows

    def encode(self, ids: Sequence[str]) -> npt.NDArray[np.bytes_]:
        """Keys for new ids in this map's mode (converting the map to text if need be)."""
        if self.mode == "uuid":
            keys = uuid_keys(ids)
            if keys is not None:
                return keys
            self._to_text()
        keys = text_keys(ids, self._keys.dtype.itemsize)
        if keys.dtype.itemsize > self._keys.dtype.itemsize:
            self._widen(keys.dtype.itemsize)
        return keys

    def lookup(self, ids: Sequence[str]) -> Rows:
        """The row of each id, -1 for an id not present. Never changes the map."""
        if self.mode == "uuid":
            keys = uuid_keys(ids)
            if keys is None:  # a mixed batch: ids that are no UUID cannot be here
                return np.array([self._lookup_one(i) for i in ids], dtype=np.int64)
        else:
            width = self._keys.dtype.itemsize
            keys = text_keys(ids, width)
            if keys.dtype.itemsize > width:  # some id is longer than any stored
                return np.array([self._lookup_one(i) for i in ids], dtype=np.int64)
        return self.lookup_keys(keys)

    def _lookup_one(self, item: str) -> int:
        if self.mode == "uuid":
            keys = uuid_keys([item])
        else:
            keys = text_keys([item])
            if keys.dtype.itemsize > self._keys.dtype.itemsize:
                return -1
            keys = keys.astype(self._keys.dtype)
        return -1 if keys is None else int(self.lookup_keys(keys)[0])

    def lookup_keys(self, keys: npt.NDArray[np.bytes_]) -> Rows:
        found = np.full(len(keys), -1, dtype=np.int64)
        if len(self._sorted_keys):
            at = np.searchsorted(self._sorted_keys, keys)
            at[at == len(self._sorted_keys)] = 0
            hit = self._sorted_keys[at] == keys
            found[hit] = self._sorted_rows[at[hit]]
        if self._recent:
            recent = self._recent
            for i, key in enumerate(keys.tolist()):
                row = recent.get(key)
                if row is not None:
                    found[i] = row
        return found

    def append(self, keys: npt.NDArray[np.bytes_]) -> Rows:
        """New rows for keys that are absent and distinct (the caller has checked)."""
        start = self._rows
        stop = start + len(keys)
        if stop > len(self._keys):
            grown = np.empty(
                max(stop, len(self._keys) + len(self._keys) // 4, 64), self._keys.dtype
            )
            grown[:start] = self._keys[:start]
            self._keys = grown
        self._keys[start:stop] = keys
        self._recent.update(zip(keys.tolist(), range(start, stop), strict=True))
        self._rows, self._live = stop, self._live + len(keys)
        self._merge_if_due()
        return np.arange(start, stop, dtype=np.int64)

    def discard(self, rows: Iterable[int]) -> None:
        """Unmaps the keys of ``rows`` (rows that currently map; others are the caller's bug)."""
        for row in rows:
            key = bytes(self._keys[row])  # as tolist() gives it: NUL padding stripped
            if self._recent.pop(key, None) is None or self._in_sorted(key):
                self._recent[key] = -1
            self._live -= 1
        self._merge_if_due()

    def ids(self, rows: Rows) -> list[str]:
        """The ids of ``rows`` (removed rows give their last id)."""
        keys = self._keys[rows]
        return uuid_strings(keys) if self.mode == "uuid" else text_strings(keys)

    def compact(self, keep: npt.NDArray[np.bool_]) -> None:
        """Renumbers rows to drop those not kept (``keep`` has one flag per row, in order)."""
        self._merge()
        renumbered = np.cumsum(keep, dtype=np.int64) - 1
        self._keys = self._keys[: self._rows][keep]
        self._rows = len(self._keys)
        self._sorted_rows = renumbered[self._sorted_rows]

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Everything :meth:`from_arrays` needs (after a merge, so no dict to save)."""
        self._merge()
        return {
            "keys": self._keys[: self._rows],
            "sorted_keys": self._sorted_keys,
            "sorted_rows": self._sorted_rows,
        }

    @classmethod
    def from_arrays(cls, mode: str, arrays: dict[str, npt.NDArray[Any]]) -> KeyMap:
        """The map :meth:`arrays` described; ValueError if the arrays do not fit together."""
        keys, sorted_keys, rows = arrays["keys"], arrays["sorted_keys"], arrays["sorted_rows"]
        if mode not in ("uuid", "text") or keys.dtype.kind != "S" or keys.ndim != 1:
            raise ValueError("the id keys are malformed")
        if (mode == "uuid") != (keys.dtype.itemsize == UUID_BYTES):
            raise ValueError("the id keys' width does not fit their mode")
        if sorted_keys.dtype != keys.dtype or rows.shape != sorted_keys.shape:
            raise ValueError("the sorted id keys do not fit the keys")
        if len(rows) and (rows.min() < 0 or rows.max() >= len(keys)):
            raise ValueError("an id maps to a row outside the keys")
        if len(rows) > 1 and not (sorted_keys[1:] > sorted_keys[:-1]).all():
            raise ValueError("the sorted id keys are not strictly sorted")
        if not np.array_equal(keys[rows], sorted_keys):
            raise ValueError("the sorted id keys differ from the keys of their rows")
        keymap = cls()
        keymap.mode = mode
        keymap._keys, keymap._rows, keymap._live = keys, len(keys), len(rows)
        keymap._sorted_keys, keymap._sorted_rows = sorted_keys, rows.astype(np.int64)
        return keymap

    def _in_sorted(self, key: bytes) -> bool:
        at = int(np.searchsorted(self._sorted_keys, key))
        return at < len(self._sorted_keys) and bytes(self._sorted_keys[at]) == key

    def _merge_if_due(self) -> None:
        if len(self._recent) >= max(MERGE_MIN, int(MERGE_FRACTION * self._live)):
            self._merge()

    def _merge(self) -> None:
        """Folds the recent changes into the sorted arrays: one pass over them."""
        if not self._recent:
            return
        dtype = self._sorted_keys.dtype
        changed = np.array(list(self._recent), dtype=dtype)
        targets = np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))
        keep = np.ones(len(self._sorted_keys), dtype=bool)
        if len(self._sorted_keys):
            at = np.searchsorted(self._sorted_keys, changed)
            inside = at < len(self._sorted_keys)
            at, inside_keys = at[inside], changed[inside]
            keep[at[self._sorted_keys[at] == inside_keys]] = False
        added = targets >= 0
        new_keys, new_rows = changed[added], targets[added]
        order = np.argsort(new_keys, kind="stable")
        new_keys, new_rows = new_keys[order], new_rows[order]
        old_keys, old_rows = self._sorted_keys[keep], self._sorted_rows[keep]
        at = np.searchsorted(old_keys, new_keys)
        self._sorted_keys = np.insert(old_keys, at, new_keys)
        self._sorted_rows = np.insert(old_rows, at, new_rows)
        self._recent = {}

    def _widen(self, width: int) -> None:
        self._merge()
        self._keys = self._keys.astype(f"S{width}")
        self._sorted_keys = self._sorted_keys.astype(f"S{width}")

    def _to_text(self) -> None:
        """Re-keys every row as text: the first id that is not a canonical UUID (once)."""
        self._merge()
        texts = uuid_strings(self._keys[: self._rows])
        self._keys = text_keys(texts)
        self.mode = "text"
        self._sorted_keys = self._keys[self._sorted_rows]
        order = np.argsort(self._sorted_keys, kind="stable")
        self._sorted_keys, self._sorted_rows = self._sorted_keys[order], self._sorted_rows[order]
