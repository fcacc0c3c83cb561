"""The faiss side of :class:`~facelens.collection.index.ann.IvfIndex`: its inverted lists.

Why a module of its own: faiss's Python API adds to lists one call at a
time and grows each list's memory by doubling; filling, emptying, relabelling,
saving and loading lists efficiently means working on their memory directly
(numpy views of faiss's arrays), which is easier to check kept in one place.
Every list is sized before it is filled, so a bulk fill or a load allocates
each list exactly once, at its final size (no doubling slack, which would
cost up to 1.3 GB at 10M faces).

Labels in the lists are row numbers of the index's float32 rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import faiss

Rows = npt.NDArray[np.int64]
Take = Callable[[Rows], npt.NDArray[np.float32]]
FILL_CHUNK = 1 << 18
"""Rows encoded per faiss call: large enough that OpenMP's start-up vanishes (per-list calls
of ~1000 rows cost 3x more on 2 busy cores) and that each list gets few ``update_entries``
calls (~80k at 10M faces and 2048 lists), small enough to keep the copies at 160 MB."""


def new_ivf(
    dim: int, centroids: npt.NDArray[np.float32], sq_trained: npt.NDArray[Any], nprobe: int
) -> faiss.IndexIVFScalarQuantizer:
    """An empty, trained IVF-SQ8 index with inner-product lists over ``centroids``.

    Not by residual: codes hold the vectors themselves, so a scan needs no
    per-list residual arithmetic (re-ranking restores exact distances anyway).
    """
    import faiss

    if sq_trained.shape != (2 * dim,) or centroids.ndim != 2 or centroids.shape[1] != dim:
        raise ValueError("the centroids or quantizer ranges do not fit the dimension")
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, len(centroids), faiss.ScalarQuantizer.QT_8bit,
        faiss.METRIC_INNER_PRODUCT, False,
    )  # fmt: skip
    faiss.copy_array_to_vector(np.asarray(sq_trained, dtype=np.float32), ivf.sq.trained)
    ivf.is_trained = True
    ivf.nprobe = min(nprobe, len(centroids))
    return ivf


def invlists(ivf: faiss.IndexIVFScalarQuantizer) -> faiss.InvertedLists:
    lists = ivf.invlists
    if lists is None:
        raise ValueError("the inverted file has no lists")
    return lists


def fill(ivf: faiss.IndexIVFScalarQuantizer, rows: Rows, lists: Rows, take: Take) -> None:
    """Adds ``rows`` (ascending), whose lists are ``lists``, encoding ``take(rows)`` in chunks."""
    import faiss

    if not len(rows):
        return
    store = invlists(ivf)
    counts = np.bincount(lists, minlength=ivf.nlist)
    offsets = np.zeros(ivf.nlist, dtype=np.int64)
    for number in np.flatnonzero(counts).tolist():
        offsets[number] = store.list_size(number)
        store.resize(number, int(offsets[number] + counts[number]))
    for start in range(0, len(rows), FILL_CHUNK):
        chunk, chunk_lists = rows[start : start + FILL_CHUNK], lists[start : start + FILL_CHUNK]
        codes = ivf.sq.compute_codes(take(chunk))
        order = np.argsort(chunk_lists, kind="stable")
        bounds = np.searchsorted(chunk_lists[order], np.arange(ivf.nlist + 1)).tolist()
        for number in np.unique(chunk_lists).tolist():
            picked = order[bounds[number] : bounds[number + 1]]
            labels = np.ascontiguousarray(chunk[picked])
            part = np.ascontiguousarray(codes[picked])
            at = int(offsets[number])
            store.update_entries(
                number, at, len(picked), faiss.swig_ptr(labels), faiss.swig_ptr(part)
            )
            offsets[number] = at + len(picked)
    ivf.ntotal += len(rows)


def drop(ivf: faiss.IndexIVFScalarQuantizer, rows: Rows, lists: Rows) -> None:
    """Takes ``rows`` out of their ``lists``: each moves the list's last entry into its place."""
    import faiss

    store, width = invlists(ivf), ivf.code_size
    for number in np.unique(lists).tolist():
        size = store.list_size(number)
        labels = faiss.rev_swig_ptr(store.get_ids(number), size)
        codes = faiss.rev_swig_ptr(store.get_codes(number), size * width).reshape(size, width)
        for at in sorted(np.flatnonzero(np.isin(labels, rows)).tolist(), reverse=True):
            size -= 1
            labels[at], codes[at] = labels[size], codes[size]
        store.resize(number, size)
    ivf.ntotal -= len(rows)


def relabel(ivf: faiss.IndexIVFScalarQuantizer, renumbered: Rows) -> None:
    """Rewrites every label ``r`` as ``renumbered[r]``, in place."""
    for labels, _ in views(ivf):
        labels[:] = renumbered[labels]


def views(
    ivf: faiss.IndexIVFScalarQuantizer,
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]]:
    """(labels, codes) of every non-empty list, as numpy views of faiss's memory.

    Valid until a list changes size; used to save, check and relabel lists.
    """
    import faiss

    store, width, out = invlists(ivf), ivf.code_size, []
    for number in range(ivf.nlist):
        size = store.list_size(number)
        if size:
            labels = faiss.rev_swig_ptr(store.get_ids(number), size)
            codes = faiss.rev_swig_ptr(store.get_codes(number), size * width)
            out.append((labels, codes.reshape(size, width)))
    return out


def load(
    ivf: faiss.IndexIVFScalarQuantizer,
    sizes: npt.NDArray[np.int64],
    read: Callable[[str, Iterator[npt.NDArray[Any]]], None],
) -> None:
    """Sizes every list as saved, then has ``read`` fill faiss's memory directly.

    ``read(name, views)`` reads the saved array ``name`` ("list_labels",
    "list_codes") into the views it is given, in list order: no copy and
    no encoding, so a load runs at disk speed.
    """
    if sizes.shape != (ivf.nlist,) or (sizes < 0).any():
        raise ValueError("the saved list sizes do not fit the lists")
    store = invlists(ivf)
    for number in np.flatnonzero(sizes).tolist():
        store.resize(number, int(sizes[number]))
    ivf.ntotal = int(sizes.sum())
    read("list_labels", (labels for labels, _ in views(ivf)))
    read("list_codes", (codes for _, codes in views(ivf)))
