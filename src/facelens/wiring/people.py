"""The people services: a person's data over its life, on facelens' own collections.

The matching rule (negative examples, per-person thresholds), corrections,
forgetting and strangers act on the recognizer's collection
(``recognizer.collection_id``) unless told another per call. None of them
owns a store, so none needs closing: the stores they are built on are
closed by whoever opened them. Collections in AWS Rekognition have none of
these (:func:`people_of` gives None), but retention still runs there.

The application services that change or read a person's data on someone's
behalf record it in the audit log, so each is built with it: the gallery
(enrolled faces and users), profiles, enrolment, corrections, forgetting,
and the curation of strangers (name, merge, split).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from facelens.config import Settings
from facelens.enrolment import EnrolmentParts
from facelens.history.audit import AuditLog
from facelens.history.ledger import RecognitionLedger
from facelens.people.corrections import CorrectionService
from facelens.people.forget import Forgetter
from facelens.people.gallery import Gallery
from facelens.people.matching import MatchPolicy
from facelens.people.profiles import ProfileService
from facelens.people.retention import ExpireStrangers, RetentionJob
from facelens.people.stranger_curation import StrangerCuration
from facelens.people.stranger_model import StrangerSettings
from facelens.people.strangers import StrangerService
from facelens.profiles.store import ProfileStore
from facelens.storage.protocol import ObjectStore
from facelens.wiring.stores import (
    CollectionParts,
    History,
    Stores,
    in_rekognition,
    open_audit,
    open_collections,
    open_history,
    open_profiles,
    open_raw_objects,
)


def match_policy(collections: CollectionParts, profiles: ProfileStore) -> MatchPolicy:
    """Negative examples and per-person thresholds, applied to every identification."""
    return MatchPolicy(collections.collections, collections.users, profiles)


def gallery(collections: CollectionParts, audit: AuditLog) -> Gallery:
    """The collections' faces and users, each change recorded in ``audit``."""
    return Gallery(collections.collections, collections.users, audit)


def open_gallery(settings: Settings, stack: ExitStack) -> Gallery:
    """:func:`gallery` on the collections and the audit log, opened on ``stack``."""
    return gallery(open_collections(settings, stack), open_audit(settings, stack))


def profile_service(profiles: ProfileStore, audit: AuditLog) -> ProfileService:
    """The profiles, each read and write recorded in ``audit`` (collections in AWS
    Rekognition have profiles too)."""
    return ProfileService(profiles, audit)


def open_profile_service(settings: Settings, stack: ExitStack) -> ProfileService:
    """:func:`profile_service` on the profiles and the audit log, opened on ``stack``."""
    return profile_service(open_profiles(settings, stack), open_audit(settings, stack))


def enrolment(
    collections: CollectionParts, profiles: ProfileStore, audit: AuditLog
) -> EnrolmentParts:
    """What enrolling a person writes, and the audit log it records itself in."""
    return EnrolmentParts(collections.collections, collections.users, profiles, audit)


def stranger_service(
    settings: Settings,
    collections: CollectionParts,
    profiles: ProfileStore,
    ledger: RecognitionLedger,
) -> StrangerService:
    """Unknown faces grouped into anonymous persons, in '<collection>.strangers'; their
    sightings in ``ledger``."""
    return StrangerService(
        collections.store,
        profiles=profiles,
        ledger=ledger,
        settings=StrangerSettings(threshold=settings.recognizer.stranger_threshold),
    )


def correction_service(
    settings: Settings,
    collections: CollectionParts,
    profiles: ProfileStore,
    history: History,
    objects: ObjectStore,
) -> CorrectionService:
    """'Not this person' and threshold overrides, on the recognizer's collection."""
    r = settings.recognizer
    return CorrectionService(
        ledger=history.ledger,
        objects=objects,
        analyzer=collections.analyzer,
        collections=collections.collections,
        profiles=profiles,
        collection_id=r.collection_id,
        face_match_threshold=r.face_match_threshold,
        audit=history.audit,
    )


def forgetter(
    settings: Settings,
    collections: CollectionParts,
    profiles: ProfileStore,
    history: History,
    objects: ObjectStore,
) -> Forgetter:
    """Forgets a person of the recognizer's collection (or another, per call)."""
    return Forgetter(
        users=collections.users,
        profiles=profiles,
        ledger=history.ledger,
        objects=objects,
        collection_id=settings.recognizer.collection_id,
        audit=history.audit,
        visits=history.visits,
    )


def stranger_curation(strangers: StrangerService, audit: AuditLog) -> StrangerCuration:
    """Naming, merging and splitting ``strangers``, each recorded in ``audit``."""
    return StrangerCuration(strangers, audit)


@dataclass(frozen=True)
class PeopleServices:
    """Every people service, on one set of stores (a recognizer, a server)."""

    policy: MatchPolicy
    corrections: CorrectionService
    forgetter: Forgetter
    strangers: StrangerService
    curation: StrangerCuration


def people_services(
    settings: Settings,
    collections: CollectionParts,
    profiles: ProfileStore,
    history: History,
    objects: ObjectStore,
) -> PeopleServices:
    """``objects``: the store without event notifications (crops are read and deleted)."""
    strangers = stranger_service(settings, collections, profiles, history.ledger)
    return PeopleServices(
        policy=match_policy(collections, profiles),
        corrections=correction_service(settings, collections, profiles, history, objects),
        forgetter=forgetter(settings, collections, profiles, history, objects),
        strangers=strangers,
        curation=stranger_curation(strangers, history.audit),
    )


def people_of(settings: Settings, stores: Stores) -> PeopleServices | None:
    """The people services on ``stores``; None when the collections are in Rekognition."""
    if stores.collections is None:
        return None
    return people_services(
        settings, stores.collections, stores.profiles, stores.history, stores.objects
    )


def retention_job(
    settings: Settings, history: History, objects: ObjectStore, people: PeopleServices | None
) -> RetentionJob:
    """Deletes crops older than ``settings.retention`` allows (run by the recognizer,
    ``facelens up`` and ``facelens retention run``), and strangers not seen for as long
    when ``recognizer.strangers`` is on and ``people`` are given (not in Rekognition)."""
    r = settings.recognizer
    expiry = None
    if r.strangers and people is not None:
        expiry = ExpireStrangers(people.strangers, people.forgetter, r.collection_id)
    return RetentionJob(
        ledger=history.ledger,
        objects=objects,
        settings=settings.retention,
        bucket=settings.bucket,
        prefix=r.prefix,
        audit=history.audit,
        strangers=expiry,
        visits=history.visits,
    )


def open_retention(settings: Settings, stack: ExitStack) -> RetentionJob:
    """The retention job alone (``facelens retention run``): the history and the objects,
    and the collections and profiles only when it expires strangers too."""
    history = open_history(settings, stack)
    objects = open_raw_objects(settings, stack)
    people = None
    if settings.recognizer.strangers and not in_rekognition(settings):
        collections = open_collections(settings, stack)
        profiles = open_profiles(settings, stack)
        people = people_services(settings, collections, profiles, history, objects)
    return retention_job(settings, history, objects, people)
