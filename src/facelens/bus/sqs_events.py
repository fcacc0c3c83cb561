"""ObjectCreated events from an SQS queue, where S3 sends them on AWS.

SQS gives exactly the semantics the worker needs: a received message is
invisible for the visibility timeout, deleted on ack, and back in the queue
if the worker dies. ``release`` makes it visible again after a short delay
rather than at once, so a store that is down is not hammered. The body may
be S3's event itself or an SNS envelope around it (S3 -> SNS -> SQS fan-out).
"""

from __future__ import annotations

from typing import Any

from facelens.aws_clients import DEFAULT_OPTIONS, AwsClient, AwsClientOptions
from facelens.bus.delivery import Delivery
from facelens.errors import InvalidEventException, ServiceUnavailableException, StorageError
from facelens.storage.events import parse_message

_MAX_WAIT_SECONDS = 20
"""SQS's longest long poll."""

_UNAVAILABLE_CODES = frozenset(
    {"ServiceUnavailable", "RequestThrottled", "ThrottlingException", "InternalError", "503"}
)
"""Error codes that say "later" (after botocore's own retries), not "never"."""


class SqsEventSource:
    """:class:`~facelens.bus.delivery.EventSource` on one SQS queue (boto3, lazily).

    ``visibility_timeout``: seconds a received message stays invisible (SQS
    takes whole seconds, at least 1). ``retry_delay``: seconds before a
    released message is visible again. ``aws``: where SQS is, and the
    timeouts and attempts (see :mod:`facelens.aws_clients`); a long poll
    never waits as long as ``aws.read_timeout``, so a quiet queue is not
    mistaken for a dead endpoint. ``client``: a ready boto3 SQS client
    (tests, special set-ups); endpoint and timeouts are then its own, and
    ``close`` leaves it open.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        visibility_timeout: float = 30.0,
        retry_delay: int = 5,
        aws: AwsClientOptions = DEFAULT_OPTIONS,
        client: Any = None,
    ) -> None:
        self.queue_url = queue_url
        self._visibility = max(1, int(visibility_timeout))
        self._retry_delay = retry_delay
        self.aws = AwsClient("sqs", aws, client=client)

    def receive(self, *, max_events: int = 10, wait_seconds: float = 1.0) -> list[Delivery]:
        # SQS long-polls for 0..20 whole seconds; stay a second under the read timeout.
        longest = min(_MAX_WAIT_SECONDS, max(0, int(self.aws.options.read_timeout) - 1))
        response = self._call(
            "receive_message",
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(max_events, 10)),
            WaitTimeSeconds=max(0, min(int(wait_seconds), longest)),
            VisibilityTimeout=self._visibility,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [_delivery(message) for message in response.get("Messages", [])]

    def ack(self, delivery: Delivery) -> None:
        self._call("delete_message", QueueUrl=self.queue_url, ReceiptHandle=delivery.delivery_id)

    def release(self, delivery: Delivery) -> None:
        self._call(
            "change_message_visibility",
            QueueUrl=self.queue_url,
            ReceiptHandle=delivery.delivery_id,
            VisibilityTimeout=self._retry_delay,
        )

    def close(self) -> None:
        self.aws.close()

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            result: dict[str, Any] = getattr(self.aws.get(), operation)(**kwargs)
        except (BotoConnectionError, HTTPClientError) as exc:
            # Refused, timed out (connect or read), closed mid-answer: all may pass.
            raise ServiceUnavailableException(f"SQS is unreachable: {exc}") from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            if code in _UNAVAILABLE_CODES:
                raise ServiceUnavailableException(f"SQS is unavailable: {code}: {exc}") from exc
            raise StorageError(f"SQS {operation} failed: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"SQS {operation} failed: {exc}") from exc
        return result


def _delivery(message: dict[str, Any]) -> Delivery:
    raw = str(message.get("Body", "")).encode()
    handle = str(message["ReceiptHandle"])
    attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
    try:
        events = parse_message(raw)
    except InvalidEventException as exc:
        return Delivery(handle, (), raw, attempt, error=exc.message)
    return Delivery(handle, events, raw, attempt)
