"""What the HTTP server's routes are handed: the parts they use, each built on first use.

Routes never see how facelens is built (:mod:`facelens.wiring`):
:func:`facelens.api.serve.build_server`, the one place that reads the wiring's
bundles (:class:`facelens.wiring.server.ServerBundles`), fills a
:class:`ServerParts` with one provider per part, and each route asks for the
parts it uses as FastAPI dependencies (:mod:`facelens.api.context`). A
provider is called per request and returns the part its builder made on
first use, so a route builds nothing it does not use (a server whose
collections live in AWS Rekognition still serves profiles), and no engine is
loaded before the first request that needs one.

Parts that always travel together are frozen bundles: the Rekognition
operations' (:class:`facelens.api.aws.rekognition_ops.RekognitionParts`),
the recognizer's crops (:class:`CropPlace`), the identification of an
uploaded photo (:class:`facelens.people.identify.Identifier`) and the
DynamoDB tables (:class:`facelens.api.aws.dynamodb_items.ProfileTables`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from facelens.api.aws.dynamodb_items import ProfileTables
from facelens.api.aws.rekognition_ops import RekognitionParts
from facelens.bus.publisher import MessagePublisher
from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.service import CollectionService
from facelens.collection.stores.store import CollectionStore
from facelens.collection.users import UserService
from facelens.enrolment import EnrolmentParts
from facelens.history.audit import AuditLog
from facelens.history.ledger import RecognitionLedger
from facelens.history.visits import VisitLedger
from facelens.people.corrections import CorrectionService
from facelens.people.forget import Forgetter
from facelens.people.gallery import Gallery
from facelens.people.identify import Identifier
from facelens.people.matching import MatchPolicy
from facelens.people.profiles import ProfileService
from facelens.people.stranger_curation import StrangerCuration
from facelens.people.strangers import StrangerService
from facelens.profiles.store import ProfileStore
from facelens.storage.protocol import ObjectStore


@dataclass(frozen=True)
class CropPlace:
    """Where the recognizer keeps its crops: the dashboard shows objects from here only."""

    bucket: str
    prefix: str


@dataclass(frozen=True)
class ServerParts:
    """One provider per part the routes use (see the module's docstring); each returns a
    part built on its first call (a bundle made of such parts), so calling one per request
    costs a lookup. The application services (``gallery``, ``profile_access``,
    ``enrolment``, ``corrections``, ``forgetter``, ``curation``) record what a route has
    them do in the audit log, as the caller's."""

    collections: Callable[[], CollectionService]
    users: Callable[[], UserService]
    store: Callable[[], CollectionStore]
    analyzer: Callable[[], FaceAnalyzer]
    objects: Callable[[], ObjectStore]
    """The object store without event notifications: crops are read from it, never put."""
    profiles: Callable[[], ProfileStore]
    ledger: Callable[[], RecognitionLedger]
    visits: Callable[[], VisitLedger]
    audit: Callable[[], AuditLog]
    """Read by the audit log's own route; the services below write it."""
    gallery: Callable[[], Gallery]
    profile_access: Callable[[], ProfileService]
    enrolment: Callable[[], EnrolmentParts]
    policy: Callable[[], MatchPolicy]
    corrections: Callable[[], CorrectionService]
    strangers: Callable[[], StrangerService]
    curation: Callable[[], StrangerCuration]
    forgetter: Callable[[], Forgetter]
    identifier: Callable[[], Identifier]
    publisher: Callable[[], MessagePublisher]
    tables: Callable[[], ProfileTables]
    rekognition: Callable[[], RekognitionParts]
