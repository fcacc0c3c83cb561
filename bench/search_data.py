"""Synthetic faces for bench.search_scale: vectors, UUIDs, second-photo queries, exact truth.

Why a module of its own: the main process and its worker subprocesses must
generate exactly the same faces from a seed (the 10M worker regenerates what
the store sizes used, as its first rows) and time searches the same way.

Generation is deterministic per chunk of :data:`CHUNK` rows (a seed sequence
keyed by the chunk number), so two threads can fill a 10M x 128 matrix in
parallel (numpy's generators release the GIL) and any prefix is the same.
"""

from __future__ import annotations

import resource
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from facelens.collection.index.keys import uuid_strings
from facelens.collection.models import NewFace
from facelens.values.boxes import BoundingBox

DIM = 128
CHUNK = 1 << 18
BOX = BoundingBox(width=0.25, height=0.3, left=0.375, top=0.2)
FloatMatrix = npt.NDArray[np.float32]


def unit_vectors(seed: int, count: int, *, threads: int = 2) -> FloatMatrix:
    """``count`` random directions in 128-d (rows of the same seed agree for any count)."""
    out = np.empty((count, DIM), dtype=np.float32)

    def fill(start: int) -> None:
        rng = np.random.default_rng([seed, start // CHUNK])
        part = out[start : start + CHUNK]
        part[:] = rng.standard_normal((len(part), DIM), dtype=np.float32)
        part /= np.sqrt(np.einsum("ij,ij->i", part, part))[:, np.newaxis]

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, range(0, count, CHUNK)))
    return out


class LazyIds(Sequence[str]):
    """``count`` random UUID4 strings, made on access (10M Python strings would take ~1 GB)."""

    def __init__(self, seed: int, count: int) -> None:
        raw = np.frombuffer(np.random.default_rng([seed, 1 << 30]).bytes(16 * count), np.uint8)
        raw = raw.reshape(count, 16).copy()
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
        self._keys = raw.view("S16").ravel()

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, item: int) -> str: ...
    @overload
    def __getitem__(self, item: slice) -> list[str]: ...
    def __getitem__(self, item: int | slice) -> str | list[str]:
        if isinstance(item, slice):
            return uuid_strings(self._keys[item])
        return uuid_strings(self._keys[item : item + 1])[0]


def new_faces(ids: Sequence[str], vectors: FloatMatrix) -> list[NewFace]:
    return [
        NewFace(face_id=i, image_id=i, external_image_id=None, bounding_box=BOX,
                confidence=99.9, embedding=v)
        for i, v in zip(ids, vectors, strict=True)
    ]  # fmt: skip


def second_photos(
    rng: np.random.Generator, vectors: FloatMatrix, count: int, noise: float
) -> tuple[FloatMatrix, npt.NDArray[np.int64]]:
    """(queries, their source rows): stored faces moved by about ``noise``, renormalised."""
    sources = np.sort(rng.choice(len(vectors), size=count, replace=False)).astype(np.int64)
    moved = vectors[sources] + rng.standard_normal((count, DIM), dtype=np.float32) * (
        noise / np.sqrt(DIM)
    )
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    return moved.astype(np.float32), sources


def exact_nearest(vectors: FloatMatrix, queries: FloatMatrix) -> npt.NDArray[np.int64]:
    """Row of the nearest stored vector per query: numpy in chunks of :data:`CHUNK` rows.

    Queries times rows (not rows times queries), so each query's scores are a
    contiguous row for argmax: 3x faster than the other orientation here.
    """
    best = np.zeros(len(queries), dtype=np.int64)
    best_dot = np.full(len(queries), -np.inf, dtype=np.float32)
    every = np.arange(len(queries))
    for start in range(0, len(vectors), CHUNK):
        dots = queries @ vectors[start : start + CHUNK].T
        rows = np.argmax(dots, axis=1)
        top = dots[every, rows]
        better = top > best_dot
        best[better], best_dot[better] = rows[better] + start, top[better]
    return best


def current_rss_bytes() -> int:
    """Resident memory of this process now, in bytes (Linux: /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def rounds_summary(rounds: list[list[float]]) -> dict[str, Any]:
    """p50 and p95 (ms) per round of durations (s): the median of the rounds, with min/max."""
    p50s = [float(np.percentile(r, 50)) * 1000 for r in rounds]
    p95s = [float(np.percentile(r, 95)) * 1000 for r in rounds]

    def figure(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }

    return {"rounds": len(rounds), "queries": len(rounds[0]), "p50_ms": figure(p50s),
            "p95_ms": figure(p95s)}  # fmt: skip
