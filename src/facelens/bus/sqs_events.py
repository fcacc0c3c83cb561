"""ObjectCreated events from an SQS queue, where S3 sends them on AWS.

SQS gives exactly the semantics the worker needs: a received message is
invisible for the visibility timeout, deleted on ack, and back in the queue
if the worker dies. ``release`` makes it visible again after a short delay
rather than at once, so a store that is down is not hammered. The body may
be S3's event itself or an SNS envelope around it (S3 -> SNS -> SQS fan-out).
"""

from __future__ import annotations

from typing import Any

from facelens.bus.delivery import Delivery
from facelens.errors import InvalidEventException, ServiceUnavailableException, StorageError
from facelens.storage.events import parse_message


class SqsEventSource:
    """:class:`~facelens.bus.delivery.EventSource` on one SQS queue (boto3, lazily)."""

    def __init__(
        self,
        queue_url: str,
        *,
        visibility_timeout: float = 30.0,
        retry_delay: int = 5,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        self.queue_url = queue_url
        self._visibility = max(1, int(visibility_timeout))
        self._retry_delay = retry_delay
        self._region = region
        self._endpoint_url = endpoint_url
        self._client = client

    def receive(self, *, max_events: int = 10, wait_seconds: float = 1.0) -> list[Delivery]:
        response = self._call(
            "receive_message",
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(max_events, 10)),
            WaitTimeSeconds=max(0, min(int(wait_seconds), 20)),
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
        self._client = None

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
        )

        try:
            result: dict[str, Any] = getattr(self._sqs(), operation)(**kwargs)
        except (EndpointConnectionError, ConnectionClosedError) as exc:
            raise ServiceUnavailableException(f"SQS is unreachable: {exc}") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise StorageError(f"SQS {operation} failed: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"SQS {operation} failed: {exc}") from exc
        return result

    def _sqs(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "sqs", region_name=self._region, endpoint_url=self._endpoint_url
            )
        return self._client


def _delivery(message: dict[str, Any]) -> Delivery:
    raw = str(message.get("Body", "")).encode()
    handle = str(message["ReceiptHandle"])
    attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
    try:
        events = parse_message(raw)
    except InvalidEventException as exc:
        return Delivery(handle, (), raw, attempt, error=exc.message)
    return Delivery(handle, events, raw, attempt)
