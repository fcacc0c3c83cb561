"""A throwaway Mosquitto broker per test, and a subscriber that collects what it publishes.

Why a real broker: what the MQTT adapters must get right (sessions that
survive a reconnect, redelivery of unacknowledged QoS 1 messages, shared
subscriptions, retained availability, last wills) is broker behaviour that
no fake reproduces faithfully. Mosquitto starts in tens of milliseconds, so
each test gets its own, on a free loopback port with its own persistence
directory; ``stop()`` then ``start()`` is a broker restart on the same port
that keeps sessions and queued messages (Mosquitto writes its database on a
clean SIGTERM shutdown, and we also autosave every second).

Anonymous access is acceptable because the listener is bound to 127.0.0.1.
A missing ``mosquitto`` binary skips on a laptop and fails when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from facelens.bus.mqtt_config import MqttCallbacks, MqttEndpoint, connect_client
from tests.servers._common import find_binary, free_port, missing

if TYPE_CHECKING:
    from paho.mqtt.client import Client, ConnectFlags, MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

DEBIAN_BINARY = Path("/usr/sbin/mosquitto")
START_TIMEOUT_S = 10.0
"""How long the broker may take to accept connections (it polls; usually < 0.1 s)."""
STOP_TIMEOUT_S = 10.0
START_ATTEMPTS = 3
"""A free port can be taken by someone else between our probe and the broker's bind."""


def _binary() -> Path | None:
    return find_binary("mosquitto", DEBIAN_BINARY)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class BrokerTls:
    """PEM files for a TLS listener; with ``require_certificate`` clients must present one."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = True


class MosquittoBroker:
    """One Mosquitto process on a config of our own; restartable on the same port(s).

    With ``tls`` it listens a second time, with TLS, on ``tls_port``.
    """

    def __init__(self, binary: Path, root: Path, *, tls: BrokerTls | None = None) -> None:
        self.binary = binary
        self.root = root
        self.tls = tls
        self.data = root / "data"
        self.log = root / "mosquitto.log"
        self.config = root / "mosquitto.conf"
        self.port = 0
        self.tls_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def endpoint(self, client_id: str | None = None) -> MqttEndpoint:
        """An endpoint for this broker; a fresh random client id unless one is given."""
        return MqttEndpoint.from_url(self.url, client_id=client_id or f"test-{uuid.uuid4().hex}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start on a free port the first time, on the same port after a ``stop()``."""
        if self.running:
            return
        if self.port:
            self._launch()
            return
        for attempt in range(START_ATTEMPTS):
            self.port = free_port()
            self.tls_port = free_port() if self.tls is not None else 0
            try:
                self._launch()
                return
            except RuntimeError:
                if attempt == START_ATTEMPTS - 1:
                    raise

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): Mosquitto saves sessions and queued messages first."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL): only what the last autosave wrote survives."""
        self._end(signal.SIGKILL)

    def _end(self, signum: int) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _launch(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.data}/",
            "autosave_interval 1",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else Mosquitto drops to "mosquitto", who cannot write here
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",  # the settings below are this listener's
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {str(self.tls.require_certificate).lower()}",
            ]
        self.config.write_text("\n".join(lines) + "\n")
        self._process = subprocess.Popen(
            [str(self.binary), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"Mosquitto exited at start; its log:\n{self._log_text()}")
            if _accepts(self.port) and (not self.tls_port or _accepts(self.tls_port)):
                return
            time.sleep(0.02)
        self._end(signal.SIGKILL)
        raise RuntimeError(f"Mosquitto did not accept connections; its log:\n{self._log_text()}")

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT_S) -> bool:
        """Whether ``text`` appears in the broker's log within ``timeout`` seconds (polled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self._log_text():
                return True
            time.sleep(0.02)
        return False

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def mosquitto_binary() -> Path:
    """The broker binary; skips the test if there is none (fails it when ``CI=true``)."""
    binary = _binary()
    if binary is None:
        missing(f"mosquitto not found on PATH or at {DEBIAN_BINARY}")
    return binary


@contextmanager
def running_broker(*, tls: BrokerTls | None = None) -> Iterator[MosquittoBroker]:
    """A started broker in a temporary directory, killed and removed on exit."""
    binary = mosquitto_binary()
    root = Path(tempfile.mkdtemp(prefix="facelens-mosquitto-"))
    broker = MosquittoBroker(binary, root, tls=tls)
    try:
        broker.start()
        yield broker
    finally:
        broker.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mqtt_broker() -> Iterator[MosquittoBroker]:
    """A started broker of this test's own, stopped (and its files removed) afterwards."""
    with running_broker() as broker:
        yield broker


@dataclass(frozen=True)
class Received:
    """One message as a subscriber saw it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_at: float = 0.0
    """Unix time (``time.time()``) when the subscriber got it: for latency figures."""


class Subscriber:
    """A client on ``topic_filter`` (QoS 1) that keeps every message it gets.

    The constructor returns once the broker acknowledged the subscription,
    so nothing published afterwards can be missed. With
    ``clean_session=False`` (and a fixed ``client_id``) the broker queues
    messages for it while it is reconnecting, e.g. across a broker restart.
    """

    def __init__(
        self,
        broker: MosquittoBroker,
        topic_filter: str,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        timeout: float = START_TIMEOUT_S,
    ) -> None:
        self._condition = threading.Condition()
        self._messages: list[Received] = []
        self._subscribed = False
        self.topic_filter = topic_filter
        self._client = connect_client(
            broker.endpoint(client_id),
            clean_session=clean_session,
            callbacks=MqttCallbacks(
                on_connect=self._on_connect,
                on_message=self._on_message,
                on_subscribe=self._on_subscribe,
            ),
        )
        deadline = time.monotonic() + timeout
        with self._condition:
            while not self._subscribed:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.close()
                    raise TimeoutError(f"No SUBACK for {topic_filter} within {timeout} s")
                self._condition.wait(left)

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._condition:
            self._subscribed = True
            self._condition.notify_all()

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        received = Received(
            message.topic, bytes(message.payload), message.qos, bool(message.retain), time.time()
        )
        with self._condition:
            self._messages.append(received)
            self._condition.notify_all()

    @property
    def messages(self) -> list[Received]:
        with self._condition:
            return list(self._messages)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Every message so far, once there are at least ``n`` (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
            return list(self._messages)

    def wait_until(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Every message so far, once ``predicate(messages)`` holds (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self._messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
            return list(self._messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
