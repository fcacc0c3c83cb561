"""What the two sides of ``bench.compare`` share, so that both measure the same thing.

The same synthetic gallery and "second photo" queries from the same seed, the same
face-box convention (face_recognition's), and the same round timer: a task's first
call is a warm-up that fixes how many calls a round makes. Both workers import it
(:mod:`bench.compare_sides` for facelens, :mod:`bench.peer_face_recognition` for the
peer), and neither imports the other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]
"""A face box as face_recognition writes it: (top, right, bottom, left), pixels."""

MAX_REPS = 200
"""Most calls one round of a fast task makes."""


def random_unit_vectors(n: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    """``n`` random unit float32 vectors of length ``dim``; the same for the same seed."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def second_photo_queries(
    vectors: npt.NDArray[np.float32], count: int, seed: int, distance: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """``count`` queries, each a stored vector moved by exactly ``distance`` (Euclidean).

    A "second photo" of someone enrolled: its nearest stored face is known
    (the row returned with it), and it lies within FaceMatchThreshold 80 for
    a ``distance`` under 0.39, so a search has something to return. Both
    sides make the same queries from the same vectors and seed.
    """
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=count, replace=False)
    base = vectors[rows].astype(np.float64)
    step = rng.standard_normal(base.shape)
    step -= (step * base).sum(axis=1, keepdims=True) * base  # orthogonal to the stored vector
    step /= np.linalg.norm(step, axis=1, keepdims=True)
    angle = 2.0 * np.arcsin(distance / 2.0)  # chord length ``distance`` on the unit sphere
    queries = np.cos(angle) * base + np.sin(angle) * step
    return queries.astype(np.float32), rows


class Timer:
    """Per task: how many calls a round makes, fixed by the task's first (warm-up) call."""

    def __init__(self, target_s: float) -> None:
        self.target_s = target_s
        self.reps: dict[str, int] = {}

    def measure(self, task: str, call: Callable[[int], Any]) -> tuple[float, Any]:
        """Mean seconds per ``call(i)`` over one round, and the last call's result."""
        if task not in self.reps:
            start = time.perf_counter()
            call(0)
            first = time.perf_counter() - start
            self.reps[task] = max(1, min(MAX_REPS, math.ceil(self.target_s / max(first, 1e-6))))
        reps = self.reps[task]
        result: Any = None
        start = time.perf_counter()
        for i in range(reps):
            result = call(i)
        return (time.perf_counter() - start) / reps, result
