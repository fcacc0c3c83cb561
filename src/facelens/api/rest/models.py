"""The REST API's answers as pydantic models, so ``/docs`` documents every response.

Field names are those on the wire (Rekognition's, capitalised), in the order
the answers send them. The JSON itself is built where the CLI builds it too
(:mod:`facelens.rendering.rekognition_json`, :mod:`facelens.rendering.rule`,
:mod:`facelens.rendering.forget`, the people services' ``as_json``), so one
vocabulary serves both; the routes
declare these models as their ``response_model``, which checks each answer
against its model and sends only the fields the answer has
(``response_model_exclude_unset``): a field that is left out (``NextToken``
on the last page) stays left out, one that is null stays null. A field a
model does not know is an error (``extra="forbid"``), so a renderer and its
model cannot drift apart unnoticed.

Numbers: similarities, confidences and thresholds are 0-100; rates
(``ExpectedFPIR``, ``MaxFalseIdentificationRate``) are shares, 0-1; boxes
and landmarks are ratios of the image's width and height; times are ISO 8601.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

JsonObject = dict[str, Any]
"""A free-form JSON object: a profile's attributes, a recognizer message, audit details."""


class Answer(BaseModel):
    """A JSON object of the REST API: only the fields named here."""

    model_config = ConfigDict(extra="forbid")


# -- Rekognition's objects --


class Box(Answer):
    Width: float
    Height: float
    Left: float
    Top: float


class Landmark(Answer):
    Type: str
    X: float
    Y: float


class HeadPose(Answer):
    """Degrees, -180 to 180."""

    Roll: float
    Yaw: float
    Pitch: float


class ImageQuality(Answer):
    Brightness: float
    Sharpness: float


class DetectedFace(Answer):
    BoundingBox: Box
    Landmarks: list[Landmark]
    Pose: HeadPose
    Quality: ImageQuality
    Confidence: float


class StoredFace(Answer):
    """A stored face; ``ExternalImageId`` and ``UserId`` only when it has them."""

    FaceId: str
    BoundingBox: Box
    ImageId: str
    Confidence: float
    ExternalImageId: str | None = None
    UserId: str | None = None
    IndexFacesModelVersion: str | None = None


class FaceRecord(Answer):
    Face: StoredFace
    FaceDetail: DetectedFace


class UnindexedFace(Answer):
    Reasons: list[str]
    FaceDetail: DetectedFace


class FaceMatch(Answer):
    Similarity: float
    Face: StoredFace


class UserEntry(Answer):
    UserId: str
    UserStatus: str


class UserMatch(Answer):
    Similarity: float
    User: UserEntry


class SearchedFaceDetail(Answer):
    FaceDetail: DetectedFace


class UnsearchedFace(Answer):
    Reasons: list[str]
    FaceDetails: DetectedFace


class FaceDeletionFailure(Answer):
    FaceId: str
    UserId: str | None = None
    Reasons: list[str]


class AssociatedFace(Answer):
    FaceId: str


class FaceAssociationFailure(Answer):
    FaceId: str
    Reasons: list[str]
    UserId: str | None = None
    Confidence: float | None = None


# -- health --


class Health(Answer):
    Status: str


# -- collections --


class CollectionList(Answer):
    CollectionIds: list[str]
    FaceModelVersions: list[str]
    NextToken: str | None = None


class CreatedCollection(Answer):
    StatusCode: int
    CollectionArn: str
    FaceModelVersion: str


class CollectionRule(Answer):
    """The identification rule for a collection now; ``MaxFalseIdentificationRate`` is null
    under the similarity rule, the expectations null when nothing is known."""

    Name: str
    Calibrated: bool
    MaxFalseIdentificationRate: float | None
    ExpectedFPIR: float | None
    ExpectedFNIR: float | None
    People: int
    OnePhotoPeople: int
    OnePhotoUserIds: list[str]
    Summary: str


class CollectionDescription(Answer):
    FaceCount: int
    UserCount: int
    FaceModelVersion: str
    CollectionARN: str
    CreationTimestamp: str
    Rule: CollectionRule


# -- faces --


class IndexedFaces(Answer):
    FaceRecords: list[FaceRecord]
    FaceModelVersion: str
    UnindexedFaces: list[UnindexedFace]


class FaceList(Answer):
    Faces: list[StoredFace]
    FaceModelVersion: str
    NextToken: str | None = None


class DeletedFaces(Answer):
    DeletedFaces: list[str]
    UnsuccessfulFaceDeletions: list[FaceDeletionFailure]


class FaceSearch(Answer):
    SearchedFaceBoundingBox: Box
    SearchedFaceConfidence: float
    FaceMatches: list[FaceMatch]
    FaceModelVersion: str


# -- users --


class UserList(Answer):
    Users: list[UserEntry]
    NextToken: str | None = None


class CreatedUser(Answer):
    UserId: str


class AssociatedFaces(Answer):
    AssociatedFaces: list[AssociatedFace]
    UnsuccessfulFaceAssociations: list[FaceAssociationFailure]
    UserStatus: str


class DeletedUser(Answer):
    """A plain DeleteUser's answer: empty (with ``forget=true``, a :class:`ForgetReport`)."""


class UserSearch(Answer):
    UserMatches: list[UserMatch]
    FaceModelVersion: str
    SearchedFace: SearchedFaceDetail
    UnsearchedFaces: list[UnsearchedFace]


# -- identify --


class PersonAnswer(Answer):
    """Whom a face was identified as; ``ExpectedFPIR`` null under the similarity rule."""

    UserId: str | None
    FaceId: str | None
    ExternalImageId: str | None
    Profile: JsonObject | None
    Similarity: float
    ExpectedFPIR: float | None
    GallerySize: int | None


class UnknownAnswer(Answer):
    """Nobody: ``StrangerId`` is the stranger the face would be filed under (null: new)."""

    StrangerId: str | None


class IdentifiedFace(Answer):
    """One face: ``Person`` or ``Unknown``, never both."""

    BoundingBox: Box
    Unknown: UnknownAnswer | None = None
    Person: PersonAnswer | None = None


class RuleInForce(Answer):
    Name: str
    MaxFalseIdentificationRate: float | None
    FaceMatchThreshold: float | None


class Identification(Answer):
    Faces: list[IdentifiedFace]
    Rule: RuleInForce


# -- profiles --


class ProfileList(Answer):
    Items: list[JsonObject]
    NextToken: str | None = None


class ProfileItem(Answer):
    Item: JsonObject


# -- identifications --


class Recognition(Answer):
    RecognitionId: str
    Status: str
    RecognizedAt: str
    Message: JsonObject


class RecognitionList(Answer):
    Identifications: list[Recognition]
    NextToken: str | None = None


# -- visits --


class Visit(Answer):
    """One visit's current answer (:mod:`facelens.rendering.visits`): ``Who`` is the name,
    UserId or FaceId, else the StrangerId or ``unknown``; ``Revision`` 0 is the first answer;
    ``Looks``: looks of the visit stored so far; ``Message``: what was published at this
    revision."""

    VisitId: str
    Camera: str | None
    Status: str
    Who: str
    UserId: str | None
    FaceId: str | None
    StrangerId: str | None
    Revision: int
    Looks: int
    RecognitionId: str
    FirstSeen: str
    UpdatedAt: str
    Message: JsonObject


class VisitList(Answer):
    Visits: list[Visit]
    NextToken: str | None = None


# -- audit --


class AuditEntry(Answer):
    EntryId: int
    At: str
    Actor: str
    Action: str
    Target: str
    CollectionId: str | None = None
    Details: JsonObject


class AuditList(Answer):
    Entries: list[AuditEntry]
    NextToken: str | None = None


# -- corrections and thresholds --


class CorrectionEntry(Answer):
    """A negative example; ``RecognitionId`` and ``Actor`` are null when the audit log does
    not keep them."""

    CorrectionId: str
    CollectionId: str
    PersonId: str
    RecognitionId: str | None
    Actor: str | None
    Similarity: float | None
    CreatedAt: str
    Undone: bool


class CorrectionAnswer(Answer):
    Correction: CorrectionEntry


class CorrectionList(Answer):
    Corrections: list[CorrectionEntry]


class Threshold(Answer):
    """The person's own ``FaceMatchThreshold`` (null: none) and the one that applies."""

    PersonId: str
    FaceMatchThreshold: float | None
    EffectiveThreshold: float


# -- forgetting --


class ForgetReport(Answer):
    Person: str
    Kind: str
    CollectionId: str
    DeletedUser: str | None
    DeletedFaces: list[str]
    DeletedStrangerFaces: list[str]
    DeletedNegatives: list[str]
    DeletedProfiles: list[str]
    DeletedCrops: list[str]
    DeletedRecords: int
    DeletedVisits: int
    FormerStrangerIds: list[str]
    Purged: bool


# -- strangers --


class Crop(Answer):
    RecognitionId: str
    Bucket: str
    Key: str
    RecognizedAt: str
    Camera: str | None


class StrangerEntry(Answer):
    StrangerId: str
    CollectionId: str
    FaceCount: int
    FaceIds: list[str]
    Sightings: int
    FirstSeen: str | None
    LastSeen: str | None
    BestCrops: list[Crop]
    MergedStrangerIds: list[str]


class StrangerList(Answer):
    Strangers: list[StrangerEntry]


class StrangerAnswer(Answer):
    Stranger: StrangerEntry


class NamedStranger(Answer):
    StrangerId: str
    CollectionId: str
    UserId: str
    FaceIds: list[str]
    UserCreated: bool
    Sightings: int
    Profile: JsonObject


class SplitStranger(Answer):
    StrangerId: str
    Stranger: StrangerEntry
    From: StrangerEntry
