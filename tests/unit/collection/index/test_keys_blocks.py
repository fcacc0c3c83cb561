"""The compact parts of the inverted-file index: id maps (keys.py) and row blocks (blocks.py).

Both behave like the plain structures they replace (a dict of id -> row, one
growing matrix); these tests compare them with those under random operations,
with small merge thresholds and blocks so every path runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import numpy as np
import pytest

from facelens.collection.index import blocks, keys
from facelens.collection.index.blocks import BlockMatrix
from facelens.collection.index.keys import KeyMap, uuid_keys, uuid_strings


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(5)


def test_uuid_keys_round_trip_and_refuse_anything_else() -> None:
    ids = [str(uuid.UUID(int=i * 7919 + 255, version=4)) for i in range(1000)]
    ids.append("00000000-0000-0000-0000-000000000000")  # a key of NUL bytes only
    packed = uuid_keys(ids)
    assert packed is not None
    assert packed.dtype.itemsize == 16
    assert uuid_strings(packed) == ids
    for other in (["x"], [ids[0].upper().replace("0", "A")], [ids[0] + "0"], [ids[0][:-1] + "g"]):
        assert uuid_keys([*ids[:3], *other]) is None
    assert uuid_keys([ids[0].replace("-", "+")]) is None


@pytest.mark.parametrize("kind", ["uuid", "text"])
def test_key_map_matches_a_dict(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(keys, "MERGE_MIN", 8)  # merges happen often
    make: Callable[[int], str] = (
        (lambda i: str(uuid.UUID(int=i, version=4))) if kind == "uuid" else (lambda i: f"id{i}")
    )
    universe = [make(i) for i in range(400)]
    keymap, reference = (
        KeyMap.from_ids(universe[:100]),
        {f: r for r, f in enumerate(universe[:100])},
    )
    rows = 100
    for _ in range(200):
        picked = [universe[i] for i in rng.choice(400, size=5, replace=False)]
        present = [f for f in picked if f in reference]
        keymap.discard([reference.pop(f) for f in present])
        if rng.random() < 0.6:
            new = keymap.append(keymap.encode(picked))
            assert new.tolist() == list(range(rows, rows + 5))
            reference.update(zip(picked, range(rows, rows + 5), strict=True))
            rows += 5
        assert len(keymap) == len(reference)
        assert keymap.lookup(universe).tolist() == [reference.get(f, -1) for f in universe]
    assert keymap.mode == kind
    live = np.array(sorted(reference.values()), dtype=np.int64)
    assert keymap.ids(live) == sorted(reference, key=reference.__getitem__)
    rebuilt = KeyMap.from_arrays(keymap.mode, keymap.arrays())
    assert rebuilt.lookup(universe).tolist() == keymap.lookup(universe).tolist()


def test_key_map_compacts_and_converts_to_text() -> None:
    ids = [str(uuid.UUID(int=i, version=4)) for i in range(10)]
    keymap = KeyMap.from_ids(ids)
    keymap.discard([1, 3])
    keep = np.ones(10, dtype=bool)
    keep[[1, 3]] = False
    keymap.compact(keep)
    assert keymap.rows == len(keymap) == 8
    assert keymap.lookup([ids[0], ids[1], ids[2], ids[9]]).tolist() == [0, -1, 1, 7]
    keymap.append(keymap.encode(["plain text id"]))  # the map becomes text, once
    assert keymap.mode == "text"
    assert keymap.lookup([ids[2], "plain text id"]).tolist() == [1, 8]
    arrays = keymap.arrays()
    with pytest.raises(ValueError, match="sorted"):
        KeyMap.from_arrays("text", {**arrays, "sorted_keys": arrays["sorted_keys"][::-1]})


def test_block_matrix_adopts_appends_takes_and_compacts(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocks, "BLOCK_SHIFT", 4)
    monkeypatch.setattr(blocks, "BLOCK_ROWS", 16)
    start = rng.standard_normal((37, 3)).astype(np.float32)
    matrix = BlockMatrix.adopting(start)  # views: two full blocks and a partial one
    extra = rng.standard_normal((30, 3)).astype(np.float32)
    matrix.append(extra[:1])  # the partial block is copied before it grows
    matrix.append(extra[1:])
    reference = np.concatenate([start, extra])
    assert len(matrix) == 67
    rows = rng.integers(0, 67, size=100)
    np.testing.assert_array_equal(matrix.take(rows), reference[rows])
    np.testing.assert_array_equal(matrix.take(rows[:5]), reference[rows[:5]])
    keep = rng.random(67) < 0.4
    matrix.compact(keep)
    np.testing.assert_array_equal(np.concatenate(matrix.blocks()), reference[keep])
    matrix.append(extra)
    np.testing.assert_array_equal(
        np.concatenate(matrix.blocks()), np.concatenate([reference[keep], extra])
    )
