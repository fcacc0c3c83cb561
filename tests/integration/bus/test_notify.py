"""Notifications end to end: apprise json:// to a real local HTTP server, and SNS on moto.

Why real servers: what a channel must get right (the payload apprise posts,
a receiver that is down, secrets in URLs staying out of the log, SNS's
subject rules) only shows on the wire. The notifier sends on its own
thread; ``flush`` and ``stop`` are the waits, never a sleep. Rules and
cooldowns are checked on what the servers received, with an injected clock.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from facelens.bus.notify import Alert, Notifier
from facelens.config import NotifyChannel, NotifyRule
from tests.servers.moto import REGION


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class Receiver:
    """A local HTTP server that records every POST (apprise's json:// target)."""

    port: int
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str, *, auth: str = "") -> str:
        return f"json://{auth}127.0.0.1:{self.port}/{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    lock = threading.Lock()
    server: ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.loads(self.rfile.read(length))
            with lock:  # recorded before the answer: once apprise returns, it is here
                state.requests.append(Received(self.path, dict(self.headers), payload))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # no stderr line per request
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Receiver(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="receiver", daemon=True
    )
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def channel(
    url: str, rule: NotifyRule = NotifyRule.EVERYONE, cooldown: float = 300
) -> NotifyChannel:
    return NotifyChannel(url=SecretStr(url), rule=rule, cooldown_seconds=cooldown)


class Clock:
    """An injected monotonic clock, in seconds, that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alert(person: str | None, n: int = 0) -> Alert:
    who = person or "Unknown person"
    return Alert(person=person, title=f"{who} at door", body=f"{who} seen (crop {n})")


def test_apprise_json_posts_title_and_message(receiver: Receiver) -> None:
    notifier = Notifier([channel(receiver.url("hook"))])
    notifier.start()
    notifier.notify(Alert(person="ana", title="Ana at door", body="Ana (99.1% similar)"))
    notifier.flush()
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    # apprise's json:// shape: the body travels as "message", not "body".
    assert request.payload["title"] == "Ana at door"
    assert request.payload["message"] == "Ana (99.1% similar)"
    assert request.payload["type"] == "info"
    assert (notifier.sent, notifier.failed, notifier.suppressed) == (1, 0, 0)
    notifier.stop()


def test_each_channel_applies_its_own_rule(receiver: Receiver) -> None:
    notifier = Notifier(
        [
            channel(receiver.url("everyone"), NotifyRule.EVERYONE),
            channel(receiver.url("unknown"), NotifyRule.UNKNOWN),
            channel(receiver.url("named"), NotifyRule.NAMED),
        ]
    )
    notifier.start()
    for person in (None, "ana", "bob"):
        notifier.notify(alert(person))
    notifier.stop()  # sends what is queued, then ends the thread
    by_path: dict[str, list[str]] = {}
    for request in receiver.requests:
        by_path.setdefault(request.path, []).append(request.payload["title"])
    assert sorted(by_path["/everyone"]) == ["Unknown person at door", "ana at door", "bob at door"]
    assert by_path["/unknown"] == ["Unknown person at door"]
    assert sorted(by_path["/named"]) == ["ana at door", "bob at door"]
    assert (notifier.sent, notifier.failed, notifier.suppressed) == (6, 0, 0)


def test_the_cooldown_is_per_person_and_ends(receiver: Receiver) -> None:
    clock = Clock()
    notifier = Notifier([channel(receiver.url("c"), cooldown=60)], clock=clock)
    notifier.start()
    notifier.notify(alert("ana", 1))
    clock.now += 10
    notifier.notify(alert("ana", 2))  # same visit: suppressed
    notifier.notify(alert("bob", 3))  # someone else: sent
    clock.now += 49.9
    notifier.notify(alert("ana", 4))  # 59.9 s after her first: still suppressed
    clock.now += 0.1
    notifier.notify(alert("ana", 5))  # 60 s: the cooldown has passed
    notifier.notify(alert("ana", 6))  # and starts again from there
    notifier.flush()
    assert [r.payload["message"] for r in receiver.requests] == [
        "ana seen (crop 1)",
        "bob seen (crop 3)",
        "ana seen (crop 5)",
    ]
    assert (notifier.sent, notifier.suppressed) == (3, 3)
    notifier.stop()


def test_unknown_faces_share_one_cooldown_per_channel(receiver: Receiver) -> None:
    clock = Clock()
    notifier = Notifier(
        [channel(receiver.url("a"), cooldown=30), channel(receiver.url("b"), cooldown=30)],
        clock=clock,
    )
    notifier.start()
    notifier.notify(Alert(person=None, title="Stranger at door", body="crop 1"))
    notifier.notify(Alert(person=None, title="Stranger at gate", body="crop 2"))  # another one
    notifier.notify(alert("ana"))  # a named person has a cooldown of her own
    clock.now += 30
    notifier.notify(Alert(person=None, title="Stranger at gate", body="crop 3"))
    notifier.flush()
    for path in ("/a", "/b"):
        bodies = [r.payload["message"] for r in receiver.requests if r.path == path]
        assert bodies == ["crop 1", "ana seen (crop 0)", "crop 3"], path
    assert (notifier.sent, notifier.suppressed) == (6, 2)
    notifier.stop()


def test_a_channel_that_is_down_fails_alone(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(
        [
            channel(f"json://127.0.0.1:{closed_port()}/down", cooldown=0),
            channel("no-such-scheme://token@host/x", cooldown=0),
            channel(receiver.url("up"), cooldown=0),
        ]
    )
    notifier.start()
    notifier.notify(alert("ana", 1))  # never raises, whatever the channels do
    notifier.notify(alert("ana", 2))
    notifier.flush()
    assert [r.payload["message"] for r in receiver.requests] == [
        "ana seen (crop 1)",
        "ana seen (crop 2)",
    ]
    assert (notifier.sent, notifier.failed) == (2, 4)
    refused = [r for r in caplog.records if "not understood by apprise" in r.getMessage()]
    assert len(refused) == 1, "a URL apprise cannot read is reported once, not per alert"
    notifier.stop()


def test_an_alert_dropped_on_a_full_queue_does_not_start_a_cooldown(receiver: Receiver) -> None:
    notifier = Notifier([channel(receiver.url("q"))], max_pending=1)
    notifier.notify(alert("ana"))  # not started yet: waits in the queue, which is now full
    notifier.notify(alert("bob"))  # dropped
    assert (notifier.failed, notifier.suppressed) == (1, 0)
    notifier.start()
    notifier.flush()
    notifier.notify(alert("bob"))  # bob was never told of: not in a cooldown
    notifier.notify(alert("ana"))  # ana was: suppressed
    notifier.flush()
    assert [r.payload["title"] for r in receiver.requests] == ["ana at door", "bob at door"]
    assert (notifier.sent, notifier.failed, notifier.suppressed) == (2, 1, 1)
    notifier.stop()


def test_secrets_in_channel_urls_never_reach_the_log(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # apprise and urllib3 too, at their most talkative
    notifier = Notifier(
        [
            channel(receiver.url("ok", auth="alice:S3cretUpPass@")),
            channel(f"json://bob:S3cretDownPass@127.0.0.1:{closed_port()}/down"),
            channel("no-such-scheme://carol:S3cretBadPass@host/x"),
        ]
    )
    notifier.start()
    notifier.notify(alert("ana"))
    notifier.flush()
    notifier.stop()
    (request,) = receiver.requests
    credentials = request.headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(credentials) == b"alice:S3cretUpPass", "the secret was used..."
    assert (notifier.sent, notifier.failed) == (1, 2)
    assert caplog.records, "something was logged (the failures at least)"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        for secret in ("S3cretUpPass", "S3cretDownPass", "S3cretBadPass"):
            assert secret not in text, f"...but never logged: {record.name}: {text}"
    ours = [r for r in caplog.records if r.name == "facelens.bus.notify"]
    assert any("no-such-scheme" in r.getMessage() for r in ours), "the scheme is named"


def test_alerts_go_to_an_sns_topic(
    moto_server: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", moto_server)  # boto3's own endpoint setting
    session = boto3.session.Session()
    sns = session.client("sns", endpoint_url=moto_server, region_name=REGION)
    sqs = session.client("sqs", endpoint_url=moto_server, region_name=REGION)
    topic = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:12]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    missing = f"arn:aws:sns:{REGION}:123456789012:no-such-topic-{uuid.uuid4().hex[:8]}"
    notifier = Notifier([channel(topic, cooldown=0), channel(missing, cooldown=0)])
    notifier.start()
    notifier.notify(Alert(person="josé", title="José at door", body="José (98.0% similar)"))
    # SNS refuses subjects of 100 characters or more, or with line breaks: cut and flattened.
    notifier.notify(Alert(person="bob", title="Bob at\ncamera " + "x" * 200, body="long"))
    notifier.notify(Alert(person="eve", title=" \n ", body="no subject at all"))
    notifier.stop()
    assert (notifier.sent, notifier.failed) == (3, 3), "the missing topic fails, alone"

    envelopes: list[dict[str, Any]] = []
    for _ in range(10):  # SNS -> SQS is in-process in moto; a few polls at most
        response = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            envelopes.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        if len(envelopes) >= 3:
            break
    by_body = {e["Message"]: e for e in envelopes}
    assert sorted(by_body) == ["José (98.0% similar)", "long", "no subject at all"]
    assert by_body["José (98.0% similar)"]["Subject"] == "José at door"
    assert by_body["José (98.0% similar)"]["TopicArn"] == topic
    subject = by_body["long"]["Subject"]
    assert subject.startswith("Bob at camera xxx")
    assert len(subject) < 100
    assert "Subject" not in by_body["no subject at all"], "an empty subject is left out"
    sns.close()
    sqs.close()
