"""The one exception tree of facelens.

Every error carries the AWS-style ``code`` that Rekognition (or S3, DynamoDB)
would use for the same condition, and the HTTP status an AWS endpoint would
answer with, so the CLI and the HTTP API can render it without a lookup
table of their own. Library errors are wrapped where they enter facelens
(``raise StorageError(...) from exc``); one place per front end turns these
into output (see :mod:`facelens.cli.output`).
"""

from __future__ import annotations

from typing import ClassVar


class FacelensError(Exception):
    """Base of every error facelens raises on purpose."""

    code: ClassVar[str] = "InternalServerError"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The error as the CLI prints it: ``{"Error": {"Code", "Message"}}``."""
        return {"Error": {"Code": self.code, "Message": self.message}}


class InvalidParameterException(FacelensError):
    """A parameter is out of range or malformed, or an image has no face."""

    code = "InvalidParameterException"
    http_status = 400


class InvalidImageFormatException(FacelensError):
    """The bytes are not an image we can decode (corrupt, truncated, empty, other format)."""

    code = "InvalidImageFormatException"
    http_status = 400


class ImageTooLargeException(FacelensError):
    """The image exceeds the byte or pixel limit."""

    code = "ImageTooLargeException"
    http_status = 400


class ResourceNotFoundException(FacelensError):
    """A collection, face or user that does not exist."""

    code = "ResourceNotFoundException"
    http_status = 400


class ResourceAlreadyExistsException(FacelensError):
    """Creating a collection or user whose id is taken."""

    code = "ResourceAlreadyExistsException"
    http_status = 400


class ConflictException(FacelensError):
    """The request conflicts with the current state (e.g. a face of another user)."""

    code = "ConflictException"
    http_status = 400


class ServiceQuotaExceededException(FacelensError):
    """A per-collection or per-user quota would be exceeded."""

    code = "ServiceQuotaExceededException"
    http_status = 400


class AccessDeniedException(FacelensError):
    code = "AccessDeniedException"
    http_status = 403


class ThrottlingException(FacelensError):
    code = "ThrottlingException"
    http_status = 400


class ConfigurationError(FacelensError):
    """Settings that cannot work: an unknown engine name, a missing or altered model file."""

    code = "InvalidParameterException"
    http_status = 400


class BadDigestException(ConfigurationError):
    """Downloaded bytes whose size or SHA-256 is not the one pinned (S3's ``BadDigest``).

    Its own code, so a script can tell a corrupt or substituted download from
    a bad parameter.
    """

    code = "BadDigest"
    http_status = 400


class StorageError(FacelensError):
    """A back-end store (SQLite, PostgreSQL, S3) failed underneath us."""

    code = "InternalServerError"
    http_status = 500


class EngineError(FacelensError):
    """The face engine failed on input it accepted (not the caller's fault)."""

    code = "InternalServerError"
    http_status = 500


class NoSuchBucketException(ResourceNotFoundException):
    """An object-store bucket that does not exist (S3's ``NoSuchBucket``)."""

    code = "NoSuchBucket"
    http_status = 404


class NoSuchKeyException(ResourceNotFoundException):
    """An object key that does not exist in its bucket (S3's ``NoSuchKey``)."""

    code = "NoSuchKey"
    http_status = 404


class InvalidEventException(InvalidParameterException):
    """An event message that is not an S3/MinIO ObjectCreated notification we can read."""

    code = "InvalidEventException"


class ServiceUnavailableException(StorageError):
    """A back end (broker, object store, database) is unreachable; retrying later may work."""

    code = "ServiceUnavailableException"
    http_status = 503


class IndexFileError(StorageError):
    """A saved search index that cannot be used: missing, truncated, corrupt or foreign.

    Never reaches a caller of the stores: they rebuild the index from the
    database instead (see :mod:`facelens.collection.stores.index_cache`).
    """


class EventNotRecordedException(StorageError):
    """An object was stored, but its ObjectCreated event did not reach every destination.

    The put itself succeeded (the object is there); the caller learns that a
    recognizer may never hear of it, and can put the object again.
    """

    code = "EventNotRecorded"
    http_status = 500


class SourceUnavailableException(FacelensError):
    """A camera or stream cannot be opened or read (down, refused, timed out)."""

    code = "SourceUnavailableException"
    http_status = 503


class UnrecognizedClientException(FacelensError):
    """No credentials, or credentials that name no key facelens issued."""

    code = "UnrecognizedClientException"
    http_status = 401


class InvalidSignatureException(FacelensError):
    """An AWS Signature Version 4 that does not match the request (or is too old)."""

    code = "InvalidSignatureException"
    http_status = 403


class TooManyFailedAuthenticationsException(ThrottlingException):
    """A client failed to authenticate too often; it must wait before trying again."""

    code = "ThrottlingException"
    http_status = 429


class SignatureReusedException(ThrottlingException):
    """A signed request that changes something, sent again with the signature it had.

    A replay, or a client's identical call within the same second (SigV4 dates count
    whole seconds). ThrottlingException, so SDKs retry, which signs the call again.
    """

    code = "ThrottlingException"
    http_status = 400


class RequestEntityTooLargeException(FacelensError):
    """A request body over the server's upload limit."""

    code = "RequestEntityTooLargeException"
    http_status = 413


class InvalidS3ObjectException(FacelensError):
    """An image named by ``S3Object`` that cannot be read: no such bucket, key or version."""

    code = "InvalidS3ObjectException"
    http_status = 400


class MissingAuthenticationTokenException(UnrecognizedClientException):
    """A request to the Rekognition endpoint that carries no AWS signature at all."""

    code = "MissingAuthenticationTokenException"
    http_status = 403


class IncompleteSignatureException(InvalidSignatureException):
    """An ``Authorization`` header that is not a well-formed AWS Signature Version 4."""

    code = "IncompleteSignatureException"
    http_status = 400


class UnknownOperationException(FacelensError):
    """An ``X-Amz-Target`` naming no operation the Rekognition endpoint implements."""

    code = "UnknownOperationException"
    http_status = 400


class SerializationException(FacelensError):
    """A request body that is not the JSON object the operation expects."""

    code = "SerializationException"
    http_status = 400


class ValidationException(InvalidParameterException):
    """A DynamoDB request whose parameters do not fit the table or the protocol's rules."""

    code = "ValidationException"
    http_status = 400


class ResourceInUseException(ResourceAlreadyExistsException):
    """Creating a DynamoDB table whose name is taken (DynamoDB's code for it)."""

    code = "ResourceInUseException"
    http_status = 400


class InvalidRequestException(InvalidParameterException):
    """An IoT data-plane request that AWS IoT would refuse: a bad topic, QoS or flag."""

    code = "InvalidRequestException"
    http_status = 400


class ForbiddenException(AccessDeniedException):
    """A signed IoT data-plane request whose key may not do this (AWS IoT's code for it)."""

    code = "ForbiddenException"
    http_status = 403
