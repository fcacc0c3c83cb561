"""The server's Prometheus metrics: identifications by status, and the collections' sizes.

Built on each scrape from the ledger and the collection store (cheap
queries), in a registry of its own: nothing global, nothing at import.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from facelens.recognizer.ledger import Status

if TYPE_CHECKING:
    from facelens.api.app import ServerContext


class _ServerCollector(Collector):
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ledger = self._ctx.components.ledger
        recognitions = GaugeMetricFamily(
            "facelens_recognitions",
            "Recognition outcomes held in the ledger, by status.",
            labels=["status"],
        )
        for status in Status:
            recognitions.add_metric([status.value], ledger.count(status=status))
        yield recognitions
        faces = GaugeMetricFamily(
            "facelens_collection_faces", "Faces stored per collection.", labels=["collection"]
        )
        users = GaugeMetricFamily(
            "facelens_collection_users", "Users per collection.", labels=["collection"]
        )
        collections = self._ctx.components.collections
        for collection_id in collections.list_collections().collection_ids:
            info = collections.describe_collection(collection_id)
            faces.add_metric([collection_id], info.face_count)
            users.add_metric([collection_id], info.user_count)
        yield faces
        yield users


def render_metrics(ctx: ServerContext) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServerCollector(ctx))
    return generate_latest(registry)
