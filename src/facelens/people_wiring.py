"""The people parts of :class:`facelens.wiring.Components`: a person's data over its life.

Strangers, corrections and the matching rule, retention, forgetting and the
audit log (:mod:`facelens.people`), each built on first use from the parts
``Components`` already builds. A mixin, so callers keep writing
``components.strangers``; kept apart so ``wiring.py`` stays readable.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facelens.collection.analysis import FaceAnalyzer
    from facelens.collection.service import CollectionService
    from facelens.collection.stores.store import CollectionStore
    from facelens.collection.users import UserService
    from facelens.config import Settings
    from facelens.history.audit import AuditLog
    from facelens.history.ledger import RecognitionLedger
    from facelens.people.corrections import CorrectionService
    from facelens.people.forget import Forgetter
    from facelens.people.matching import MatchPolicy
    from facelens.people.retention import RetentionJob
    from facelens.people.strangers import StrangerService
    from facelens.profiles.store import ProfileStore
    from facelens.storage.protocol import ObjectStore


class PeopleParts:
    """What these parts need of ``Components`` (declared for the type checker only)."""

    if TYPE_CHECKING:
        settings: Settings

        @property
        def in_rekognition(self) -> bool: ...
        @property
        def store(self) -> CollectionStore: ...
        @property
        def analyzer(self) -> FaceAnalyzer: ...
        @property
        def collections(self) -> CollectionService: ...
        @property
        def users(self) -> UserService: ...
        @property
        def profiles(self) -> ProfileStore: ...
        @property
        def raw_objects(self) -> ObjectStore: ...
        @property
        def ledger(self) -> RecognitionLedger: ...

    # -- the audit log --
    @cached_property
    def audit(self) -> AuditLog:
        """Who enrolled, deleted, corrected or read whose data: where the collections are
        (PostgreSQL's log is every host's), else ``<home>/audit.db``."""
        from facelens.history.registry import open_audit_log

        return open_audit_log(self.settings.database_url(), self.settings.home)

    # -- corrections and per-person thresholds --
    @cached_property
    def match_policy(self) -> MatchPolicy:
        """Negative examples and per-person thresholds, applied to every identification."""
        from facelens.people.matching import MatchPolicy

        return MatchPolicy(self.collections, self.users, self.profiles)

    @cached_property
    def corrections(self) -> CorrectionService:
        """'Not this person' and threshold overrides, on the recognizer's collection."""
        from facelens.people.corrections import CorrectionService

        r = self.settings.recognizer
        return CorrectionService(
            ledger=self.ledger,
            objects=self.raw_objects,
            analyzer=self.analyzer,
            collections=self.collections,
            profiles=self.profiles,
            collection_id=r.collection_id,
            face_match_threshold=r.face_match_threshold,
            audit=self.audit,
        )

    # -- retention and forgetting --
    @cached_property
    def retention(self) -> RetentionJob:
        """Deletes crops older than ``settings.retention`` allows (run by the recognizer,
        ``facelens up`` and ``facelens retention run``)."""
        from facelens.people.retention import ExpireStrangers, RetentionJob

        r = self.settings.recognizer
        expiry = None
        if r.strangers and not self.in_rekognition:
            expiry = ExpireStrangers(self.strangers, self.forgetter, r.collection_id)
        return RetentionJob(
            ledger=self.ledger,
            objects=self.raw_objects,
            settings=self.settings.retention,
            bucket=self.settings.bucket,
            prefix=self.settings.recognizer.prefix,
            audit=self.audit,
            strangers=expiry,
        )

    @cached_property
    def forgetter(self) -> Forgetter:
        """Forgets a person of the recognizer's collection (or another, per call)."""
        from facelens.people.forget import Forgetter

        return Forgetter(
            users=self.users,
            profiles=self.profiles,
            ledger=self.ledger,
            objects=self.raw_objects,
            collection_id=self.settings.recognizer.collection_id,
            audit=self.audit,
        )

    # -- strangers --
    @cached_property
    def strangers(self) -> StrangerService:
        """Unknown faces grouped into anonymous persons, in '<collection>.strangers'."""
        from facelens.people.stranger_types import StrangerSettings
        from facelens.people.strangers import StrangerService

        settings = StrangerSettings(threshold=self.settings.recognizer.stranger_threshold)
        return StrangerService(
            self.store, profiles=self.profiles, ledger=self.ledger, settings=settings
        )
