"""``/health`` and ``/metrics``: whether the server answers, and Prometheus metrics.

The metrics are built on each scrape from the ledger and the collection
store (cheap queries), in a registry of their own: nothing global, nothing
at import.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from facelens.access.keys import Principal, Role
from facelens.api.context import Collections, Ledger
from facelens.api.rest.models import Health
from facelens.api.security import require
from facelens.collection.service import CollectionService
from facelens.history.ledger import RecognitionLedger, Status

router = APIRouter(tags=["facelens"])

Reader = Annotated[Principal, Depends(require(Role.READ))]


@router.get(
    "/health",
    summary="Liveness: the server answers and its stores open.",
    response_model=Health,
    response_model_exclude_unset=True,
)
def health(collections: Collections) -> Health:
    collections.list_collections(max_results=1)
    return Health(Status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics: identifications by status, collections.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."}},
)
def metrics(_: Reader, ledger: Ledger, collections: Collections) -> Response:
    return Response(render_metrics(ledger, collections), media_type=CONTENT_TYPE_LATEST)


class _ServerCollector(Collector):
    def __init__(self, ledger: RecognitionLedger, collections: CollectionService) -> None:
        self._ledger = ledger
        self._collections = collections

    def collect(self) -> Iterator[Metric]:
        recognitions = GaugeMetricFamily(
            "facelens_recognitions",
            "Recognition outcomes held in the ledger, by status.",
            labels=["status"],
        )
        for status in Status:
            recognitions.add_metric([status.value], self._ledger.count(status=status))
        yield recognitions
        faces = GaugeMetricFamily(
            "facelens_collection_faces", "Faces stored per collection.", labels=["collection"]
        )
        users = GaugeMetricFamily(
            "facelens_collection_users", "Users per collection.", labels=["collection"]
        )
        for collection_id in self._collections.list_collections().collection_ids:
            info = self._collections.describe_collection(collection_id)
            faces.add_metric([collection_id], info.face_count)
            users.add_metric([collection_id], info.user_count)
        yield faces
        yield users


def render_metrics(ledger: RecognitionLedger, collections: CollectionService) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServerCollector(ledger, collections))
    return generate_latest(registry)
