"""The fuzzed server's world: its credentials, and data worth reaching.

Generated requests name real things half the time (the collection ``faces``,
the person ``ada`` with a face and a profile, a stranger, identified and
unknown sightings with crops, the DynamoDB table ``people``), so they get
past "not found" into the code that works on data. Requests that succeed
may delete any of it; :meth:`World.reseed` puts back what is missing before
each case, through the stores (with the same ids, so the generated requests
keep naming it), never through the API under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from facelens.api.aws.dynamodb_items import ProfileTables
from facelens.api.aws.dynamodb_tables import table_from_request
from facelens.collection.models import NewFace, QualityFilter
from facelens.engine.types import Embedding
from facelens.errors import ResourceNotFoundException
from facelens.history.ledger import Recognition, Status
from facelens.people.stranger_model import companion_id
from facelens.values.boxes import BoundingBox
from facelens.wiring.server import ServerBundles
from tests.fuzz.images import Photos
from tests.fuzz.wire import AccessKey

COLLECTION = "faces"
USER = "ada"
TABLE = "people"
FACE = "11111111-1111-4111-8111-111111111111"
"""Ada's face."""
LONE_FACE = "22222222-2222-4222-8222-222222222222"
"""A face of nobody (no user)."""
IDENTIFIED = "rec-identified"
UNKNOWN = "rec-unknown"
STRANGER_SEEN = "rec-stranger"
CROP_KEY = "faces/fuzz/unknown.jpg"


@dataclass(frozen=True, repr=False)
class Credentials:
    """What the server issued: API keys (Bearer), access keys (SigV4), dashboard cookies."""

    admin_token: str
    reader_token: str
    admin_key: AccessKey
    reader_key: AccessKey
    region: str
    admin_cookie: str = ""
    reader_cookie: str = ""
    spare_cookie: str = ""
    """A session of its own for logging out (the others must stay open)."""

    def __repr__(self) -> str:
        return "Credentials(…)"


@dataclass(repr=False)
class World:
    """The seeded data of one server; ``embedding``: a real face's, from the real engine."""

    bundles: ServerBundles
    tables: ProfileTables
    photos: Photos
    embedding: Embedding
    strangers: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"World({COLLECTION!r}, {USER!r}, strangers={self.strangers})"

    @classmethod
    def seed(cls, bundles: ServerBundles, tables: ProfileTables, photos: Photos) -> World:
        embedding = bundles.analyzer().probe(photos.faces[0], QualityFilter.NONE).embedding
        world = cls(bundles, tables, photos, embedding)
        world.reseed()
        return world

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id worth naming in a path or a parameter."""
        return (
            COLLECTION,
            USER,
            FACE,
            LONE_FACE,
            IDENTIFIED,
            UNKNOWN,
            STRANGER_SEEN,
            TABLE,
            CROP_KEY,
            companion_id(COLLECTION),
            *self.strangers,
        )

    def reseed(self) -> None:
        """Puts back whatever generated requests deleted."""
        c = self.bundles
        try:
            c.collections().collections.describe_collection(COLLECTION)
        except ResourceNotFoundException:
            c.collections().collections.create_collection(COLLECTION)
        present = c.collections().store.get_faces(COLLECTION, [FACE, LONE_FACE])
        missing = [f for f in (FACE, LONE_FACE) if f not in present]
        if missing:
            c.collections().store.add_faces(COLLECTION, [self._face(f) for f in missing])
        try:
            c.collections().store.get_user(COLLECTION, USER)
        except ResourceNotFoundException:
            c.collections().store.create_user(COLLECTION, USER)
        if c.collections().store.get_faces(COLLECTION, [FACE])[FACE].user_id is None:
            c.collections().store.associate_faces(COLLECTION, USER, [FACE])
        if c.profiles().get(USER) is None:
            c.profiles().put(USER, {"Name": "Ada Lovelace", "Born": 1815, "Tags": ["maths"]})
        if c.objects().list_objects(c.settings.bucket, prefix=CROP_KEY).objects == ():
            c.objects().put_object(
                c.settings.bucket, CROP_KEY, self.photos.faces[0], content_type="image/jpeg"
            )
        if self.tables.catalogue.get(TABLE) is None:
            self.tables.catalogue.create(
                table_from_request(
                    {
                        "TableName": TABLE,
                        "KeySchema": [{"AttributeName": "UserId", "KeyType": "HASH"}],
                        "AttributeDefinitions": [{"AttributeName": "UserId", "AttributeType": "S"}],
                        "BillingMode": "PAY_PER_REQUEST",
                    }
                )
            )
        try:
            c.collections().collections.describe_collection(companion_id(COLLECTION))
        except ResourceNotFoundException:  # deleted by a request: the service would not see it
            c.collections().collections.create_collection(companion_id(COLLECTION))
        if not c.people().strangers.list(COLLECTION):
            nudged = self.embedding + np.float32(0.01)
            unit: Embedding = nudged / np.float32(np.linalg.norm(nudged))
            stranger = c.people().strangers.observe(COLLECTION, unit).stranger_id
            self.strangers = [stranger]
            self._record(STRANGER_SEEN, Status.UNKNOWN, {"StrangerId": stranger})
        self._record(
            IDENTIFIED,
            Status.IDENTIFIED,
            {"UserId": USER, "FaceId": FACE, "Name": "Ada", "Similarity": 97.5, "Camera": "door"},
        )
        self._record(UNKNOWN, Status.UNKNOWN, {"Camera": "door"})

    def _face(self, face_id: str) -> NewFace:
        return NewFace(
            face_id=face_id,
            image_id=face_id,
            external_image_id="seed",
            bounding_box=BoundingBox(width=0.5, height=0.5, left=0.25, top=0.25),
            confidence=99.0,
            embedding=self.embedding,
        )

    def _record(self, recognition_id: str, status: Status, message: dict[str, object]) -> None:
        ledger = self.bundles.history().ledger
        if ledger.get(recognition_id) is not None:
            return
        ledger.record(
            Recognition(
                recognition_id=recognition_id,
                status=status,
                topic="rekognition",
                message={"Status": status.value, **message},
                recognized_at=datetime.now(UTC) - timedelta(minutes=5),
                bucket=self.bundles.settings.bucket,
                key=CROP_KEY,
            )
        )
