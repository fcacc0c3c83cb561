"""Where an MQTT broker is and how to reach it, and one place that builds a paho client for it.

Every MQTT part of facelens (the publisher, the event source, the test
helpers) connects the same way: callback API version 2, automatic reconnect
with a 1 s → 30 s back-off, TLS with an optional client certificate (AWS IoT
Core authenticates devices by certificate), and ``connect_async`` plus
``loop_start`` so that a broker that is down when we start is retried in the
background rather than failing the process. Keeping that here means a fix to
reconnect or TLS behaviour lands everywhere at once.

MQTT 3.1.1 is the default because every broker speaks it; a caller that
needs an MQTT 5 feature (the event source needs Receive Maximum and a
session expiry) asks for 5 explicitly.

Client ids: a broker keeps one connection per client id and closes the
older one when a second client connects under the same id, so two clients
sharing an id knock each other off about once a second, forever.
:func:`make_client_id` forms every id facelens uses (see its docstring).
"""

from __future__ import annotations

import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from facelens.errors import ConfigurationError

if TYPE_CHECKING:
    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

RECONNECT_MIN_DELAY_S = 1
"""First wait after a lost connection; doubles on each failed attempt."""
RECONNECT_MAX_DELAY_S = 30
"""Longest wait between attempts, so a broker back from maintenance is found within 30 s."""


def new_process_tag() -> str:
    """8 random hex digits (32 bits) that set this process's clients apart from every other
    process's: random rather than the pid, since containers on one broker all run as pid 1."""
    return secrets.token_hex(4)


def make_client_id(prefix: str, role: str, *, tag: str | None = None) -> str:
    """The MQTT client id ``<prefix>-<role>`` or, with ``tag``, ``<prefix>-<role>-<tag>``.

    ``prefix`` is ``mqtt.client_id`` (default ``facelens``); ``role`` says what
    the client is for (``serve-pub``, ``recognizer-1``...). A client whose
    broker session must outlive the process (the recognizer's persistent
    event session) passes no ``tag``: it must come back under the same id to
    resume, and its role (the worker id) is what keeps it unique. A client with no
    session state worth keeping (clean session: publishers, listeners) passes
    this process's tag, so two processes in the same role never share an id.

    Ids are longer than the 23 bytes MQTT 3.1.1 obliges a broker to accept;
    Mosquitto, EMQX, HiveMQ and AWS IoT Core (128) accept them.
    """
    if not prefix or not role:
        raise ConfigurationError("An MQTT client id needs a prefix and a role")
    return f"{prefix}-{role}-{tag}" if tag else f"{prefix}-{role}"


@dataclass(frozen=True)
class MqttEndpoint:
    """One broker and the credentials for it; built by :meth:`from_url` from settings.

    ``password`` is kept out of ``repr`` so that logging an endpoint never
    leaks it. ``keepalive`` is in seconds: the broker drops us (and fires our
    last will) after 1.5 × keepalive of silence.
    """

    host: str
    port: int
    tls: bool
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = 30

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigurationError("The MQTT endpoint needs a host")
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"MQTT port {self.port} is out of range 1-65535")
        if not self.client_id:
            raise ConfigurationError("The MQTT endpoint needs a non-empty client_id")
        if self.keepalive < 5:
            raise ConfigurationError(f"MQTT keepalive {self.keepalive} s is below the minimum 5 s")
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            raise ConfigurationError("CA, certificate and key files need an mqtts:// URL")
        if self.key_file is not None and self.cert_file is None:
            raise ConfigurationError("An MQTT client key file needs its certificate file")
        if self.password is not None and self.username is None:
            raise ConfigurationError("An MQTT password needs a username")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        keepalive: int = 30,
    ) -> MqttEndpoint:
        """``mqtt://[user[:pass]@]host[:1883]`` or ``mqtts://…host[:8883]``.

        Credentials may come in the URL (percent-encoded) or as arguments,
        not both: two sources for one secret is how the wrong one gets used.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"Not an MQTT URL: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ConfigurationError(
                f"MQTT URL scheme must be mqtt:// or mqtts://, not {parts.scheme or 'none'}://"
            )
        if not parts.hostname:
            raise ConfigurationError("The MQTT URL has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError("An MQTT URL is only scheme://[user[:pass]@]host[:port]")
        url_user = unquote(parts.username) if parts.username is not None else None
        url_password = unquote(parts.password) if parts.password is not None else None
        if url_user is not None and (username is not None or password is not None):
            raise ConfigurationError("Give MQTT credentials in the URL or as arguments, not both")
        return cls(
            host=parts.hostname,
            port=port if port is not None else _DEFAULT_PORTS[scheme],
            tls=scheme == "mqtts",
            client_id=client_id,
            username=url_user if url_user is not None else username,
            password=url_password if url_user is not None else password,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            keepalive=keepalive,
        )


@dataclass(frozen=True)
class LastWill:
    """What the broker publishes for us when we vanish without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


OnConnect = Callable[
    ["Client", Any, "ConnectFlags", "ReasonCode", "Properties | None"],
    None,
]
OnDisconnect = Callable[
    ["Client", Any, "DisconnectFlags", "ReasonCode", "Properties | None"],
    None,
]
OnMessage = Callable[["Client", Any, "MQTTMessage"], None]
OnPublish = Callable[["Client", Any, int, "ReasonCode", "Properties"], None]
OnSubscribe = Callable[["Client", Any, int, "list[ReasonCode]", "Properties | None"], None]


@dataclass(frozen=True)
class MqttCallbacks:
    """paho callbacks (API version 2), installed before the first connect so none is missed."""

    on_connect: OnConnect | None = None
    on_disconnect: OnDisconnect | None = None
    on_message: OnMessage | None = None
    on_publish: OnPublish | None = None
    on_subscribe: OnSubscribe | None = None


def connect_client(
    endpoint: MqttEndpoint,
    *,
    clean_session: bool,
    will: LastWill | None = None,
    manual_ack: bool = False,
    callbacks: MqttCallbacks | None = None,
    mqtt5: bool = False,
    receive_maximum: int | None = None,
    session_expiry_seconds: int = 0,
) -> Client:
    """A configured paho client whose network thread is already (re)connecting.

    Returns at once: the connection is made in the background and retried
    with back-off for as long as the client lives, so callers watch
    ``on_connect`` rather than waiting here. ``clean_session=False`` keeps
    the broker-side session (subscriptions, unacknowledged QoS 1 messages)
    across disconnects. With ``mqtt5`` that maps to Clean Start = 0 plus
    ``session_expiry_seconds`` (MQTT 5 ends a session at disconnect unless
    it is given an expiry); ``receive_maximum`` (MQTT 5 only) caps how many
    unacknowledged QoS 1 messages the broker sends us at once.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    if receive_maximum is not None and not mqtt5:
        raise ConfigurationError("receive_maximum needs MQTT 5")
    if receive_maximum is not None and not 0 < receive_maximum < 65536:
        raise ConfigurationError(f"receive_maximum {receive_maximum} is out of range 1-65535")
    if session_expiry_seconds < 0:
        raise ConfigurationError("session_expiry_seconds must not be negative")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=endpoint.client_id,
        clean_session=None if mqtt5 else clean_session,
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    client.enable_logger(logging.getLogger("facelens.bus.paho"))
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_DELAY_S, max_delay=RECONNECT_MAX_DELAY_S)
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        _configure_tls(client, endpoint)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    if callbacks is not None:
        client.on_connect = callbacks.on_connect
        client.on_disconnect = callbacks.on_disconnect
        client.on_message = callbacks.on_message
        client.on_publish = callbacks.on_publish
        client.on_subscribe = callbacks.on_subscribe
    properties = None
    if mqtt5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if session_expiry_seconds:
            properties.SessionExpiryInterval = session_expiry_seconds
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
    client.connect_async(
        endpoint.host,
        endpoint.port,
        endpoint.keepalive,
        clean_start=clean_session if mqtt5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        properties=properties,
    )
    client.loop_start()
    return client


def _configure_tls(client: Client, endpoint: MqttEndpoint) -> None:
    """Verify the broker (the CA file, else the system CAs) and present our certificate if any."""
    for path in (endpoint.ca_file, endpoint.cert_file, endpoint.key_file):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"MQTT TLS file {path} does not exist")
    try:
        client.tls_set(
            ca_certs=str(endpoint.ca_file) if endpoint.ca_file else None,
            certfile=str(endpoint.cert_file) if endpoint.cert_file else None,
            keyfile=str(endpoint.key_file) if endpoint.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigurationError(f"MQTT TLS files cannot be loaded: {exc}") from exc
