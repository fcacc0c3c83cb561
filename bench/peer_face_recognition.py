"""The peer of ``bench.compare``: face_recognition 1.3.0, called as its README and examples do.

Runs only inside the peer's worker process (``bench.compare_sides``), which
is the only process that imports ``face_recognition``: on import it sets
Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES``, which facelens leaves off.
Method names and returns mirror :class:`bench.compare_sides.Ours`, so the
parent calls both the same way.
"""

from __future__ import annotations

import importlib
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.compare_shared import Box, Timer, random_unit_vectors, second_photo_queries


class Peer:
    """``face_recognition`` 1.3.0 called the way its README and examples call it."""

    def __init__(self, models_dir: Path | None, target_s: float) -> None:
        # imported by name: face_recognition is optional, untyped and not a dependency
        self.fr: Any = importlib.import_module("face_recognition")
        self.timer = Timer(target_s)
        self.data: dict[str, Any] = {}
        self._known: npt.NDArray[np.float64] | None = None
        self._edge_known: list[npt.NDArray[np.float64]] = []
        self._edge_names: list[str] = []

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        import dlib

        return {
            "face_recognition": version("face_recognition"),
            "face_recognition_models": version("face_recognition_models"),
            "dlib": dlib.__version__,
            "face_locations": "model='hog', number_of_times_to_upsample=1 (its defaults)",
            "face_encodings": "model='small' (5-point landmarks), num_jitters=1 (its defaults)",
        }

    def decode(self, key: str) -> tuple[float, list[int]]:
        data: bytes = self.data[key]
        seconds, pixels = self.timer.measure(
            f"decode:{key}", lambda _: self.fr.load_image_file(io.BytesIO(data))
        )
        return seconds, [int(pixels.shape[1]), int(pixels.shape[0])]

    def detect(self, key: str, detector: str = "") -> tuple[float, int]:
        image = self.data[key]
        seconds, boxes = self.timer.measure(
            f"detect:{key}", lambda _: self.fr.face_locations(image)
        )
        return seconds, len(boxes)

    def embed(self, key: str, boxes: Sequence[Box], batched: bool) -> tuple[float, int]:
        """Seconds per face of ``face_encodings`` (its 5-point landmarks, then the network)."""
        image = self.data[key]
        locations = [tuple(b) for b in boxes]
        if batched:
            seconds, _ = self.timer.measure(
                "embed:batch",
                lambda _: self.fr.face_encodings(image, known_face_locations=locations),
            )
            return seconds / len(locations), len(locations)
        seconds, _ = self.timer.measure(
            "embed:single",
            lambda i: self.fr.face_encodings(
                image, known_face_locations=[locations[i % len(locations)]]
            ),
        )
        return seconds, len(locations)

    def search_setup(
        self,
        n: int,
        dim: int,
        seed: int,
        queries: int,
        distance: float,
        limit: int = 0,
        max_distance: float = 0.0,
    ) -> dict[str, Any]:
        """The same vectors and queries as ours, as float64: ``face_encodings`` returns float64."""
        self._known = None
        vectors = random_unit_vectors(n, dim, seed)
        made, _ = second_photo_queries(vectors, queries, seed + 1, distance)
        self._queries = made.astype(np.float64)
        self._known = vectors.astype(np.float64)
        del vectors
        return {"known": "(n, 128) float64 ndarray", "bytes": int(self._known.nbytes)}

    def search(self, n: int, limit: int = 0, max_distance: float = 0.0) -> tuple[float, int]:
        known, queries = self._known, self._queries
        seconds, distances = self.timer.measure(
            f"search:{n}", lambda i: self.fr.face_distance(known, queries[i % len(queries)])
        )
        return seconds, len(distances)

    def search_free(self) -> None:
        self._known = None

    def edge_setup(
        self,
        known: Sequence[tuple[str, bytes]],
        max_distance: float = 0.0,
        detectors: Sequence[str] = (),
    ) -> dict[str, int]:
        """The recipe's known faces: ``face_encodings(load_image_file(photo))[0]`` per photo."""
        self._edge_known, self._edge_names = [], []
        for name, data in known:
            encodings = self.fr.face_encodings(self.fr.load_image_file(io.BytesIO(data)))
            if encodings:
                self._edge_known.append(encodings[0])
                self._edge_names.append(name)
        return {name: self._edge_names.count(name) for name in sorted(set(self._edge_names))}

    def edge(
        self, detector: str = "", scale: float = 0.25
    ) -> tuple[float, int, int, dict[str, int]]:
        """facerec_from_webcam_faster.py's loop body on every frame (the recipe skips every
        other frame; both sides here process all of them). ``scale`` 0.25 is the recipe's
        resize; 1.0 skips the resize."""
        import cv2

        fr = self.fr
        known, names = self._edge_known, self._edge_names
        frames = self.data["edge_frames"]
        found = 0
        named: dict[str, int] = {}
        start = time.perf_counter()
        for frame in frames:
            small_frame = frame if scale == 1.0 else cv2.resize(frame, (0, 0), fx=scale, fy=scale)
            rgb_small_frame = cv2.cvtColor(small_frame, cv2.COLOR_BGR2RGB)
            face_locations = fr.face_locations(rgb_small_frame)
            face_encodings = fr.face_encodings(rgb_small_frame, face_locations)
            found += len(face_locations)
            for face_encoding in face_encodings:
                matches = fr.compare_faces(known, face_encoding)
                face_distances = fr.face_distance(known, face_encoding)
                best_match_index = int(np.argmin(face_distances))
                if matches[best_match_index]:
                    name = names[best_match_index]
                    named[name] = named.get(name, 0) + 1
        return time.perf_counter() - start, len(frames), found, named
