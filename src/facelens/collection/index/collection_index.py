"""The search view of a collection: its face index and its users' templates.

Stores keep their vectors durable elsewhere; an index is an in-memory view
(saved beside the database, see :mod:`facelens.collection.stores.index_cache`)
used only to answer "which ids are nearest to this query".
:class:`FaceIndex` is the seam where an approximate index replaces
:class:`~facelens.collection.index.exact.ExactIndex` once collections outgrow a
brute-force scan: :class:`CollectionIndex` combines a collection's face
index (exact below :data:`ANN_THRESHOLD` faces, an inverted file,
:class:`~facelens.collection.index.ann.IvfIndex`, from there) with the user
templates that SearchUsers needs, so every store back end can share it.

All distances are Euclidean between unit vectors, so they lie in 0-2
(0: identical direction, about 1.41: orthogonal, 2: opposite).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from facelens.collection.index.exact import ExactIndex, FloatMatrix, Neighbor

ANN_THRESHOLD = 50_000
"""Faces from which a collection's face index is an inverted file instead of a scan.

Trade-off, measured on 2 cores with random 128-d vectors (bench/search_scale.py):
exact search p50 is about 1 ms at 50k, 3.3 ms at 100k and 72 ms at 1M; the
inverted file 0.4 ms at 60k, 0.5-0.7 ms at 100k and 1.1-1.4 ms at 1M, with recall@1
1.0 on second-photo queries. It used to be 250k while the HNSW graph took
35 s to build at 100k and was never saved; an IVF builds in 0.35 s at 60k
(0.5-1.5 s at 100k) and the stores save it, so the switch comes where a scan
starts to cost a millisecond. Below it, search stays exact (recall 1 by
construction).
"""


class VectorIndex(Protocol):
    """A mutable set of (id, unit vector) pairs searchable by Euclidean distance."""

    def add(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        """Inserts ``vectors[i]`` under ``ids[i]``; an id already present is overwritten."""
        ...

    def remove(self, ids: Sequence[str]) -> None:
        """Removes the ids that are present; unknown ids are ignored."""
        ...

    def search(
        self, query: npt.NDArray[np.float32], *, limit: int, max_distance: float
    ) -> list[Neighbor]:
        """Up to ``limit`` ids within ``max_distance`` (0-2) of ``query``, nearest first."""
        ...

    def __len__(self) -> int: ...


class FaceIndex(VectorIndex, Protocol):
    """What :class:`CollectionIndex` needs of its face index (ExactIndex or IvfIndex)."""

    @property
    def dim(self) -> int | None: ...

    def __contains__(self, item: object) -> bool: ...

    def vectors(self, ids: Sequence[str]) -> FloatMatrix:
        """A copy of the vectors of ``ids`` (KeyError for an unknown id)."""
        ...


class CollectionIndex:
    """The search view of one collection: its faces, and one template per user.

    A user's template is the L2-renormalised mean of its faces' embeddings,
    so searching users is one more exact search over far fewer vectors.
    Templates are recomputed only for the users a change touches.

    The face index is exact below ``ann_threshold`` faces and an inverted
    file from there: :meth:`build` picks by size, and :meth:`add_faces`
    switches an exact index over once it reaches the threshold. It never
    switches back when faces are removed (no flapping around the
    threshold); the next :meth:`build` picks again. Users are few, so
    templates stay exact. Face-to-user links are Python dicts (about 200
    bytes per associated face), so they cost nothing for faces without a user.
    """

    def __init__(self, *, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.faces: FaceIndex = ExactIndex()
        self.users = ExactIndex()
        self._ann_threshold = ann_threshold
        self._face_user: dict[str, str] = {}
        self._user_faces: dict[str, set[str]] = {}

    @property
    def ann_threshold(self) -> int:
        return self._ann_threshold

    @classmethod
    def build(
        cls,
        face_ids: Sequence[str],
        vectors: FloatMatrix,
        user_ids: Sequence[str | None],
        *,
        copy: bool = True,
        ann_threshold: int = ANN_THRESHOLD,
    ) -> CollectionIndex:
        """An index of faces ``face_ids`` (rows of ``vectors``), owned by ``user_ids``.

        ``copy=False`` lets the face index adopt ``vectors`` (see
        :meth:`ExactIndex.from_matrix`): a store rebuilding its cache passes
        a matrix it has just filled and will not touch again. From
        ``ann_threshold`` faces on, the face index is an
        :class:`~facelens.collection.index.ann.IvfIndex` (about 9 s per million
        faces to train and fill on 2 cores, see its module).
        """
        if len(face_ids) >= ann_threshold:
            from facelens.collection.index.ann import IvfIndex  # faiss loads only when needed

            faces: FaceIndex = IvfIndex.from_matrix(face_ids, vectors, copy=copy)
        else:
            faces = ExactIndex.from_matrix(face_ids, vectors, copy=copy)
        links = {f: u for f, u in zip(face_ids, user_ids, strict=True) if u is not None}
        return cls.restore(faces, links, ann_threshold=ann_threshold)

    @classmethod
    def restore(
        cls, faces: FaceIndex, face_users: dict[str, str], *, ann_threshold: int = ANN_THRESHOLD
    ) -> CollectionIndex:
        """An index around a ready face index and its face -> user links (a load or a build).

        Every user's template comes from one bulk read of its faces' vectors.
        Raises KeyError if a linked face is not in ``faces``.
        """
        index = cls(ann_threshold=ann_threshold)
        index.faces = faces
        index._face_user = face_users
        for face_id, user_id in face_users.items():
            index._user_faces.setdefault(user_id, set()).add(face_id)
        if face_users:
            linked = list(face_users)
            users = list(index._user_faces)
            codes = {u: i for i, u in enumerate(users)}
            owners = np.fromiter((codes[face_users[f]] for f in linked), np.int64, len(linked))
            sums = np.zeros((len(users), faces.dim or 0), dtype=np.float64)
            np.add.at(sums, owners, faces.vectors(linked))
            index._set_templates(users, sums)
        return index

    def face_users(self) -> dict[str, str]:
        """Face id -> user id for every face that belongs to a user (a copy)."""
        return dict(self._face_user)

    def face_count(self, user_id: str) -> int:
        return len(self._user_faces.get(user_id, ()))

    def add_faces(self, face_ids: Sequence[str], vectors: FloatMatrix) -> None:
        """New faces belong to no user yet; reaching the threshold trains the inverted file."""
        self.faces.add(face_ids, vectors)
        if isinstance(self.faces, ExactIndex) and len(self.faces) >= self._ann_threshold:
            from facelens.collection.index.ann import IvfIndex

            ids, matrix = self.faces.release()
            self.faces = IvfIndex.from_matrix(ids, matrix, copy=False)

    def remove_faces(self, face_ids: Sequence[str]) -> None:
        self.assign(face_ids, None)
        self.faces.remove(face_ids)

    def assign(self, face_ids: Iterable[str], user_id: str | None) -> None:
        """Moves known faces to ``user_id`` (None: to no user), refreshing touched templates."""
        touched: set[str] = set()
        for face_id in face_ids:
            old = self._face_user.pop(face_id, None)
            if old is not None:
                self._user_faces[old].discard(face_id)
                touched.add(old)
            if user_id is not None and face_id in self.faces:
                self._face_user[face_id] = user_id
                self._user_faces.setdefault(user_id, set()).add(face_id)
                touched.add(user_id)
        self._refresh(touched)

    def apply_changes(
        self,
        deleted: Sequence[str],
        face_ids: Sequence[str],
        vectors: FloatMatrix,
        user_ids: Sequence[str | None],
    ) -> None:
        """Catches up with writes made elsewhere: faces deleted, then faces added or changed.

        ``face_ids`` are faces written since this index was current, with
        their present vector and user. A face already here with the same
        vector only changes user; one with another vector (deleted and added
        again under the same id) is replaced.
        """
        self.remove_faces([f for f in deleted if f in self.faces])
        known = [i for i, f in enumerate(face_ids) if f in self.faces]
        stale = np.ones(len(face_ids), dtype=bool)
        if known:
            same = (self.faces.vectors([face_ids[i] for i in known]) == vectors[known]).all(axis=1)
            stale[np.asarray(known)[same]] = False
        replaced = [face_ids[i] for i in known if stale[i]]
        if replaced:
            self.remove_faces(replaced)
        fresh = np.flatnonzero(stale)
        self.add_faces([face_ids[i] for i in fresh.tolist()], vectors[fresh])
        moves: dict[str | None, list[str]] = {}
        for face_id, user_id in zip(face_ids, user_ids, strict=True):
            if self._face_user.get(face_id) != user_id:
                moves.setdefault(user_id, []).append(face_id)
        for user_id, moved in moves.items():
            self.assign(moved, user_id)

    def _refresh(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            members = self._user_faces.get(user_id)
            if not members:
                self._user_faces.pop(user_id, None)
                self.users.remove([user_id])
                continue
            mean = self.faces.vectors(sorted(members)).mean(axis=0, dtype=np.float64)
            self._set_templates([user_id], mean[np.newaxis, :])

    def _set_templates(self, user_ids: Sequence[str], sums: npt.NDArray[np.float64]) -> None:
        """Templates from each user's summed (or mean) face vectors, renormalised."""
        norms = np.linalg.norm(sums, axis=1)
        usable = norms >= 1e-12  # faces that cancel out have no direction to search by
        self.users.remove([u for u, ok in zip(user_ids, usable.tolist(), strict=True) if not ok])
        kept = [u for u, ok in zip(user_ids, usable.tolist(), strict=True) if ok]
        if kept:
            templates = (sums[usable] / norms[usable, np.newaxis]).astype(np.float32)
            self.users.add(kept, templates)
