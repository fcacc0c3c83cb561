"""A stranger id that cannot be one is "no such stranger", never a store error (a 500).

Found by the fuzz suite (tests/fuzz): ``POST .../strangers/stranger-1/merge`` with
``{"Other": "\\ud800"}`` (a lone surrogate, which JSON allows as an escape and
Python's ``json`` also decodes from raw ``\\xed\\xa0\\x80`` bytes) reached
SQLite, which cannot encode it: UnicodeEncodeError, HTTP 500. The CLI's
arguments can carry lone surrogates too (``surrogateescape`` of non-UTF-8
bytes), so the service refuses such ids before any store sees them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests

from facelens.collection.stores.registry import open_store
from facelens.errors import ResourceNotFoundException
from facelens.people.strangers import StrangerService
from tests.servers.facelens_api import ApiServer

COLLECTION = "faces"
BAD_IDS = ["\ud800", "\udcff-x", "stranger-\udfff", "stranger-1\x00", "", "faces"]


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_service_refuses_ids_no_stranger_can_have(tmp_path: Path, bad: str) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'faces.db'}")
    store.create_collection(COLLECTION, face_model_version="test")
    service = StrangerService(store)
    first = service.observe(COLLECTION, _unit(1)).stranger_id
    try:
        with pytest.raises(ResourceNotFoundException):
            service.merge(COLLECTION, first, bad)
        with pytest.raises(ResourceNotFoundException):
            service.get(COLLECTION, bad)
        with pytest.raises(ResourceNotFoundException):
            service.split(COLLECTION, bad, ["00000000-0000-4000-8000-000000000000"])
        assert service.get(COLLECTION, first).face_count == 1  # untouched
    finally:
        store.close()


@pytest.mark.parametrize(
    "body",
    [b'{"Other": "\\ud800"}', b'{"Other": "\xed\xa0\x80"}', b'{"Other": "stranger-1\\u0000"}'],
)
def test_merge_with_an_impossible_other_is_404(api_server: ApiServer, body: bytes) -> None:
    own, strangers = api_server.bundles.collections(), api_server.bundles.people().strangers
    own.store.create_collection(COLLECTION, face_model_version=own.collections.face_model_version)
    stranger = strangers.observe(COLLECTION, _unit(2)).stranger_id
    response = requests.post(
        f"{api_server.url}/api/v1/collections/{COLLECTION}/strangers/{stranger}/merge",
        data=body,
        headers={**api_server.headers(), "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 404, response.text
    assert response.json()["__type"] == "ResourceNotFoundException"
    assert strangers.get(COLLECTION, stranger).face_count == 1
