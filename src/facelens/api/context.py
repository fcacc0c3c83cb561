"""The server a route runs in, and the parts it may ask for as FastAPI dependencies.

:class:`ServerContext` is what every route may know of its server: the
``serve`` settings, the collection the dashboard works on, where the crops
are, the key store, and the recognizer's settings (its rule and thresholds).
The parts themselves (services, stores) reach a route only as the
dependencies below: a route names what it uses in its signature
(``collections: Collections``), so what it touches is written where it is
declared, and nothing else of the server is in reach. The providers behind
them (:class:`facelens.api.parts.ServerParts`) are read here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from facelens.access.keys import KeyStore
from facelens.api.parts import CropPlace, ServerParts
from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.service import CollectionService
from facelens.collection.stores.store import CollectionStore
from facelens.collection.users import UserService
from facelens.config import RecognizerSettings, ServeSettings
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
class ServerContext:
    """What the routes share. ``collection_id``: the collection the dashboard enrols into
    and the recognizer searches (``serve.collection_id``, else the recognizer's)."""

    settings: ServeSettings
    recognizer: RecognizerSettings
    collection_id: str
    crops: CropPlace
    keys: KeyStore


def server(request: Request) -> ServerContext:
    """The context of the app serving ``request`` (set by :func:`facelens.api.app.create_app`)."""
    ctx: ServerContext = request.app.state.ctx
    return ctx


def _provided(pick: Callable[[ServerParts], Callable[[], Any]]) -> Any:
    """A dependency handing a route the part ``pick`` names."""

    def dependency(request: Request) -> Any:
        parts: ServerParts = request.app.state.parts
        return pick(parts)()

    return Depends(dependency)


Context = Annotated[ServerContext, Depends(server)]
Collections = Annotated[CollectionService, _provided(lambda p: p.collections)]
Users = Annotated[UserService, _provided(lambda p: p.users)]
Store = Annotated[CollectionStore, _provided(lambda p: p.store)]
Analyzer = Annotated[FaceAnalyzer, _provided(lambda p: p.analyzer)]
Objects = Annotated[ObjectStore, _provided(lambda p: p.objects)]
Profiles = Annotated[ProfileStore, _provided(lambda p: p.profiles)]
Ledger = Annotated[RecognitionLedger, _provided(lambda p: p.ledger)]
Visits = Annotated[VisitLedger, _provided(lambda p: p.visits)]
Audit = Annotated[AuditLog, _provided(lambda p: p.audit)]
Policy = Annotated[MatchPolicy, _provided(lambda p: p.policy)]
Corrections = Annotated[CorrectionService, _provided(lambda p: p.corrections)]
Strangers = Annotated[StrangerService, _provided(lambda p: p.strangers)]
Forget = Annotated[Forgetter, _provided(lambda p: p.forgetter)]
Identify = Annotated[Identifier, _provided(lambda p: p.identifier)]
GalleryChanges = Annotated[Gallery, _provided(lambda p: p.gallery)]
"""The collections' faces and users, each change recorded as the caller's."""
ProfileAccess = Annotated[ProfileService, _provided(lambda p: p.profile_access)]
"""The profiles, each read and write recorded as the caller's."""
Curation = Annotated[StrangerCuration, _provided(lambda p: p.curation)]
"""Naming, merging and splitting strangers, each recorded as the caller's."""
Enrolment = Annotated[EnrolmentParts, _provided(lambda p: p.enrolment)]
"""Enrolling a person (:func:`facelens.enrolment.enrol_person`), recorded as the caller's."""
