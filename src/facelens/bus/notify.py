"""Notifications, the original recipe's SNS step: apprise URLs and SNS topics, with rules.

Each channel has a rule (everyone, unknown faces only, named people only) and
a cooldown per person, so one visit is one alert rather than one per crop.
Sending happens on a background thread: an SMTP server or chat API that is
slow or down never holds up recognition. Alerts are best effort (logged on
failure, not retried): the MQTT message is the durable record.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from facelens.aws_clients import AwsClientOptions, make_client
from facelens.config import NotifyChannel, NotifyRule

_log = logging.getLogger(__name__)

_UNKNOWN = "\0unknown"
"""Cooldown key for unknown faces: strangers share one cooldown per channel."""

_SNS_SUBJECT_CHARS = 99
"""SNS subjects must be under 100 characters, without line breaks or control characters."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class Alert:
    """person: the UserId or FaceId identified, or None for an unknown face."""

    person: str | None
    title: str
    body: str


class Sender:
    """Sends to one channel URL; built once per channel."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._apprise: Any = None
        self._apprise_refused = False
        self._sns: Any = None

    def send(self, alert: Alert) -> bool:
        if self.url.startswith("arn:aws:sns:"):
            return self._send_sns(alert)
        return self._send_apprise(alert)

    def _send_apprise(self, alert: Alert) -> bool:
        import apprise

        if self._apprise_refused:
            return False
        if self._apprise is None:
            client = apprise.Apprise()
            if not client.add(self.url):
                # Said once: the URL will not change while we run.
                self._apprise_refused = True
                _log.error(
                    "notification URL not understood by apprise (scheme %s)", _scheme(self.url)
                )
                return False
            self._apprise = client
        return bool(self._apprise.notify(body=alert.body, title=alert.title))

    def _send_sns(self, alert: Alert) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._sns is None:
            # A session of its own (boto3's default one is not thread-safe); the endpoint comes
            # from boto3's chain (AWS_ENDPOINT_URL_SNS...), the region from the ARN.
            self._sns = make_client("sns", AwsClientOptions(region=self.url.split(":")[3]))
        kwargs: dict[str, Any] = {"TopicArn": self.url, "Message": alert.body}
        subject = _sns_subject(alert.title)
        if subject:
            kwargs["Subject"] = subject
        try:
            self._sns.publish(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            _log.error("SNS publish to %s failed: %s", self.url, exc)
            return False
        return True


class Notifier:
    """Applies each channel's rule and cooldown, then sends on a background thread."""

    def __init__(
        self,
        channels: Sequence[NotifyChannel],
        *,
        max_pending: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channels = [(c, Sender(c.url.get_secret_value())) for c in channels]
        self._clock = clock
        self._last: dict[tuple[int, str], float] = {}
        self._cooldown_lock = threading.Lock()  # notify() may be called by several workers
        self._queue: queue.Queue[tuple[Sender, Alert] | None] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failed = 0
        self.suppressed = 0

    def start(self) -> None:
        if self._thread is None and self._channels:
            self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
            self._thread.start()

    def notify(self, alert: Alert) -> None:
        """Queues the alert for every channel whose rule and cooldown let it through."""
        now = self._clock()
        for index, (channel, sender) in enumerate(self._channels):
            if not _rule_allows(channel.rule, alert):
                continue
            key = (index, alert.person or _UNKNOWN)
            with self._cooldown_lock:
                last = self._last.get(key)
                if last is not None and now - last < channel.cooldown_seconds:
                    self.suppressed += 1
                    continue
                try:
                    self._queue.put_nowait((sender, alert))
                except queue.Full:
                    # Not stamped: a dropped alert must not silence the person for the cooldown.
                    self.failed += 1
                    _log.error("notification queue full: alert %r dropped", alert.title)
                    continue
                self._last[key] = now

    def flush(self, timeout: float = 10.0) -> None:
        """Waits until queued alerts have been sent (or ``timeout`` seconds passed)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                sender, alert = item
                try:
                    ok = sender.send(alert)
                except Exception:  # a channel's library must not kill the thread
                    _log.exception("notification to %s failed", _scheme(sender.url))
                    ok = False
                if ok:
                    self.sent += 1
                else:
                    self.failed += 1
            finally:
                self._queue.task_done()


def _rule_allows(rule: NotifyRule, alert: Alert) -> bool:
    if rule is NotifyRule.UNKNOWN:
        return alert.person is None
    if rule is NotifyRule.NAMED:
        return alert.person is not None
    return True


def _sns_subject(title: str) -> str:
    """The title as SNS takes a subject: control characters to spaces, under 100 characters."""
    return _CONTROL.sub(" ", title).strip()[:_SNS_SUBJECT_CHARS].rstrip()


def _scheme(url: str) -> str:
    """The URL's scheme only: the rest carries tokens that must not reach the log."""
    return url.split("://", 1)[0] if "://" in url else url.split(":", 3)[0]
