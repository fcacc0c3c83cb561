"""The two sides of ``bench.compare``, each in its own worker process pinned to one core.

Here: the worker process (:class:`SideProcess`) and facelens' side (:class:`Ours`);
the peer's side is :class:`bench.peer_face_recognition.Peer`, and what both sides
share (the workload, the face-box convention, the round timer) is
:mod:`bench.compare_shared`.

Why separate processes: ``face_recognition`` changes Pillow's global state when
imported (``ImageFile.LOAD_TRUNCATED_IMAGES = True``), which facelens'
decoder deliberately leaves off, and both sides load dlib models; keeping
them apart means neither measures the other's set-up. Why one core: ratios
carry across machines only when both sides get the same, fixed share of
the machine, so both workers are pinned to the same CPU
(``os.sched_setaffinity``), OpenCV runs one thread, and the parent sets
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` to 1 before spawning them
(numpy reads them when it loads). The parent calls the two workers in turn
(ours, peer, ours, peer...), one call at a time, so whatever else loads the
machine falls on both, and the timing is taken inside the worker
(``time.perf_counter``), around the measured work only.

Each measuring method returns seconds per operation (the mean over the
calls of one round) and what the operation found; the parent turns rounds
into medians. The first call of a task is a warm-up that also chooses how
many calls one round makes (enough for about ``target_s``), so fast
operations are not timed one clock-tick at a time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from bench.compare_shared import Box, Timer, random_unit_vectors, second_photo_queries


class SideUnavailable(RuntimeError):
    """The worker could not start its side (e.g. ``face_recognition`` is not importable)."""


class SideFailed(RuntimeError):
    """A call failed in the worker; the message holds the worker's traceback."""


class Ours:
    """facelens as users get it: ``build_engine(Settings(...))`` and the collection index."""

    def __init__(self, models_dir: Path | None, target_s: float) -> None:
        from facelens.config import Settings

        self._settings_type = Settings
        self.models_dir = models_dir
        self.timer = Timer(target_s)
        self.data: dict[str, Any] = {}
        # keyed by detector and the sorted overrides
        self._engines: dict[tuple[str | None, tuple[tuple[str, Any], ...]], Any] = {}
        self._faces: list[Any] = []
        self._index: Any = None
        self._edge_names: dict[str, str] = {}

    def put(self, key: str, value: Any) -> None:
        """Keeps inputs here (images, bytes, frames), so the timed calls carry none."""
        self.data[key] = value

    def settings(self, detector: str | None, overrides: dict[str, Any] | None = None) -> Any:
        """``Settings`` as the environment configures them, with ``detector`` (None: the
        configured default) and ``overrides``."""
        chosen: dict[str, Any] = {} if detector is None else {"detector": detector}
        return self._settings_type(models_dir=self.models_dir, **chosen, **(overrides or {}))

    def engine(self, detector: str | None, overrides: dict[str, Any] | None = None) -> Any:
        """The registry's engine for ``detector`` and ``overrides`` (e.g. ``embed_flip``)."""
        from facelens.engine.registry import build_engine

        key = (detector, tuple(sorted((overrides or {}).items())))
        if key not in self._engines:
            engine = build_engine(self.settings(detector, overrides))
            engine.prepare()
            self._engines[key] = engine
        return self._engines[key]

    def describe(
        self, detector: str | None = None, overrides: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Which engine, detector, embedder and flip setting the registry built (for the report)."""
        settings = self.settings(detector, overrides)
        engine = self.engine(detector, overrides)
        embedder = getattr(engine, "embedder", None)
        found = getattr(engine, "detector", None)
        return {
            "engine": settings.engine,
            "engine_class": type(engine).__name__,
            "model_version": engine.model_version,
            "detector_setting": settings.detector,
            "detector": getattr(found, "name", None),
            "embedder_setting": getattr(settings, "embedder", None),
            "embedder_class": None if embedder is None else type(embedder).__name__,
            "embed_flip_setting": getattr(settings, "embed_flip", None),
            "embedder_flip": None if embedder is None else getattr(embedder, "flip", None),
            "embed_views_setting": getattr(settings, "embed_views", None),
            "embedder_views": None if embedder is None else getattr(embedder, "views", None),
            "embed_threads_setting": getattr(settings, "embed_threads", None),
            "detect_max_side": getattr(settings, "detect_max_side", None),
            "overrides": overrides or {},
        }

    def decode(self, key: str) -> tuple[float, list[int]]:
        from facelens.engine.images import decode_image

        data: bytes = self.data[key]

        def call(_: int) -> Any:
            return decode_image(data, max_bytes=len(data), max_pixels=50_000_000)

        seconds, decoded = self.timer.measure(f"decode:{key}", call)
        return seconds, [decoded.width, decoded.height]

    def detect(self, key: str, detector: str) -> tuple[float, int]:
        engine = self.engine(detector)
        image = self.data[key]
        seconds, faces = self.timer.measure(
            f"detect:{key}:{detector}", lambda _: engine.detect(image)
        )
        return seconds, len(faces)

    def embed_faces(self, key: str, count: int) -> list[Box]:
        """Finds ``count`` faces in image ``key`` (reused cyclically if fewer): their boxes.

        The peer gets these boxes as ``known_face_locations``, so both sides
        embed the same faces (its own 5-point landmarks found inside them).
        """
        image = self.data[key]
        found = self.engine("hog").detect(image)
        if not found:
            raise RuntimeError(f"no face found in {key}")
        self._faces = [found[i % len(found)] for i in range(count)]
        return [
            (round(b.top), round(b.right), round(b.bottom), round(b.left))
            for b in (f.face.box for f in self._faces)
        ]

    def embed(self, key: str, batched: bool, overrides: dict[str, Any] | None) -> tuple[float, int]:
        """Seconds per face of align + embed: one face per call, or all faces in one call."""
        engine = self.engine("hog", overrides)
        variant = repr(sorted((overrides or {}).items()))
        image, faces = self.data[key], self._faces
        if batched:
            seconds, _ = self.timer.measure(
                f"embed:batch:{variant}", lambda _: engine.embed(image, faces)
            )
            return seconds / len(faces), len(faces)
        seconds, _ = self.timer.measure(
            f"embed:single:{variant}", lambda i: engine.embed(image, [faces[i % len(faces)]])
        )
        return seconds, len(faces)

    def search_setup(
        self,
        n: int,
        dim: int,
        seed: int,
        queries: int,
        distance: float,
        limit: int,
        max_distance: float,
    ) -> dict[str, Any]:
        """The collection index over ``n`` random faces, as ``CollectionIndex.build`` picks it.

        Returns which index it built, the build time (untimed otherwise) and,
        as a check that the figures are for a working search, the share of
        queries whose best hit is the face they were made from (recall@1;
        the peer's scan is exact, so 1 by construction).
        """
        from facelens.collection.index import collection_index as index_module

        self._index = None
        vectors = random_unit_vectors(n, dim, seed)
        self._queries, rows = second_photo_queries(vectors, queries, seed + 1, distance)
        start = time.perf_counter()
        self._index = index_module.CollectionIndex.build(
            [f"face-{i}" for i in range(n)], vectors, [None] * n, copy=False
        )
        build_s = time.perf_counter() - start
        faces = self._index.faces
        best = [faces.search(q, limit=limit, max_distance=max_distance) for q in self._queries]
        correct = sum(bool(h) and h[0].id == f"face-{r}" for h, r in zip(best, rows, strict=True))
        return {
            "index": type(faces).__name__,
            "build_s": round(build_s, 3),
            "ann_threshold": getattr(index_module, "ANN_THRESHOLD", None),
            "recall_at_1": round(correct / len(rows), 4),
        }

    def search(self, n: int, limit: int, max_distance: float) -> tuple[float, int]:
        faces, queries = self._index.faces, self._queries
        seconds, hits = self.timer.measure(
            f"search:{n}",
            lambda i: faces.search(
                queries[i % len(queries)], limit=limit, max_distance=max_distance
            ),
        )
        return seconds, len(hits)

    def search_free(self) -> None:
        self._index = None

    def edge_setup(
        self, known: Sequence[tuple[str, bytes]], max_distance: float, detectors: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """Enrols the known people's photos (largest face each), one collection per detector.

        Each detector's loop searches faces enrolled through the same
        detector, as a deployment using that detector would have.
        """
        from facelens.collection.index.collection_index import CollectionIndex
        from facelens.engine.images import decode_image

        images = [
            (name, decode_image(data, max_bytes=len(data), max_pixels=50_000_000).pixels)
            for name, data in known
        ]
        self._edge: dict[str, tuple[Any, dict[str, str]]] = {}
        self._edge_max_distance = max_distance
        enrolled = {}
        for detector in detectors:
            engine = self.engine(detector)
            ids, vectors, users = [], [], []
            for i, (name, image) in enumerate(images):
                faces = engine.detect(image)
                if faces:
                    ids.append(f"{name}-{i}")
                    vectors.append(engine.embed(image, faces[:1])[0])
                    users.append(name)
            index = CollectionIndex.build(ids, np.stack(vectors), users)
            self._edge[detector] = (index, dict(zip(ids, users, strict=True)))
            enrolled[detector] = {name: users.count(name) for name in sorted(set(users))}
        return enrolled

    def edge(self, detector: str) -> tuple[float, int, int, dict[str, int]]:
        """One pass of the like-for-like loop over the frames: seconds, frames, faces, names."""
        import cv2

        engine = self.engine(detector)
        index, names = self._edge[detector]
        faces_index = index.faces
        frames = self.data["edge_frames"]
        found = 0
        named: dict[str, int] = {}
        start = time.perf_counter()
        for frame in frames:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            faces = engine.detect(rgb)
            if not faces:
                continue
            found += len(faces)
            for vector in engine.embed(rgb, faces):
                hits = faces_index.search(vector, limit=1, max_distance=self._edge_max_distance)
                if hits:
                    name = names[hits[0].id]
                    named[name] = named.get(name, 0) + 1
        return time.perf_counter() - start, len(frames), found, named


def _serve(
    side: str, conn: Connection, cpu: int | None, models_dir: Path | None, target_s: float
) -> None:
    """The worker's loop: pin, build the side, then answer ``(method, args)`` until None."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        import cv2

        cv2.setNumThreads(1)
        if side == "ours":
            impl: Any = Ours(models_dir, target_s)
        else:  # imported here: face_recognition changes Pillow's globals when it loads
            from bench.peer_face_recognition import Peer

            impl = Peer(models_dir, target_s)
    except BaseException:  # face_recognition calls quit() when its models are missing
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    while True:
        message = conn.recv()
        if message is None:
            return
        method, args = message
        try:
            conn.send(("ok", getattr(impl, method)(*args)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class SideProcess:
    """One side's worker process; :meth:`call` runs one of its methods there and waits."""

    def __init__(
        self, side: str, *, cpu: int | None, models_dir: Path | None, target_s: float
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.side = side
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(side, child, cpu, models_dir, target_s),
            name=f"compare-{side}",
            daemon=True,
        )
        self.process.start()
        child.close()
        try:
            status, payload = self._conn.recv()
        except EOFError:
            status, payload = "error", f"the {side} worker exited while starting"
        if status != "ok":
            self.close()
            raise SideUnavailable(str(payload).strip().splitlines()[-1] if payload else side)

    def call(self, method: str, *args: Any) -> Any:
        self._conn.send((method, args))
        try:
            status, payload = self._conn.recv()
        except EOFError as exc:
            raise SideFailed(f"the {self.side} worker died during {method}") from exc
        if status != "ok":
            raise SideFailed(f"{self.side}.{method} failed:\n{payload}")
        return payload

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(None)
            self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self._conn.close()
