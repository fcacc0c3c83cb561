"""The Rekognition-compatible endpoint: AWS SDKs and the AWS CLI talk to facelens unchanged.

Rekognition speaks the AWS JSON 1.1 protocol: every call is ``POST /`` with
the operation in ``X-Amz-Target: RekognitionService.<Operation>``, the
parameters as a JSON object, and an AWS Signature Version 4 (scoped to the
service ``rekognition``) in ``Authorization``. So
``boto3.client("rekognition", endpoint_url=…)`` with a facelens access key
works as against AWS, errors included: each ``FacelensError`` leaves as
``{"__type": code, "message": …}``, which botocore turns into its own
exception classes.

The route, the order of checks and the threading are shared with DynamoDB
(:mod:`facelens.api.aws.protocol`); the operations are in
:mod:`facelens.api.aws.rekognition_ops`. Those that change a collection go
through :class:`facelens.people.gallery.Gallery` as the signing key's actor,
which records them in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable

from facelens.access.keys import Principal
from facelens.api.actors import ACCESS_KEY, actor_of
from facelens.api.aws.protocol import Json, JsonService
from facelens.api.aws.rekognition_ops import (
    OPERATIONS,
    Caller,
    ImageOperation,
    ImageParts,
    Params,
    RekognitionParts,
)
from facelens.collection.analysis import FaceAnalyzer
from facelens.people.gallery import Gallery
from facelens.storage.protocol import ObjectStore

SIGNING_NAME = "rekognition"
"""The service name in the SigV4 credential scope (boto3's signing name for Rekognition)."""

TARGET_PREFIX = "RekognitionService."
CONTENT_TYPE = "application/x-amz-json-1.1"


def service(
    parts: Callable[[], RekognitionParts],
    analyzer: Callable[[], FaceAnalyzer],
    objects: Callable[[], ObjectStore],
    gallery: Callable[[], Gallery],
) -> JsonService:
    """Rekognition on ``POST /`` (what :func:`facelens.api.aws.protocol.json_router`
    dispatches to), running each operation on collections on ``parts`` for the signing key,
    whose changes go through ``gallery``, which records them. DetectFaces and CompareFaces
    run on the engine (``analyzer``) and ``objects`` alone, without opening ``parts``: they
    work where the collections are in AWS Rekognition and ``parts`` refuses."""

    def run(principal: Principal, name: str, params: Json) -> Json:
        operation = OPERATIONS[name]
        if isinstance(operation, ImageOperation):
            return operation.handler(ImageParts(analyzer(), objects()), Params(params))
        caller = Caller(actor_of(principal, via=ACCESS_KEY), gallery())
        return operation.handler(parts(), Params(params), caller)

    return JsonService(
        name="rekognition",
        target_prefix=TARGET_PREFIX,
        signing_name=SIGNING_NAME,
        content_type=CONTENT_TYPE,
        roles={name: operation.role for name, operation in OPERATIONS.items()},
        run=run,
    )
