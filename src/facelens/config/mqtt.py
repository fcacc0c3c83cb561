"""``Settings.mqtt`` (``FACELENS_MQTT__*``): the broker identifications are published to."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from facelens.config.section import Section


class MqttSettings(Section):
    """The MQTT broker the recognizer publishes to (and, optionally, takes events from)."""

    url: str | None = Field(
        default=None,
        description=(
            "Broker: 'mqtt://host:1883' or 'mqtts://host:8883' (TLS); or 'iotdata://<AWS IoT "
            "data endpoint host>' to publish through AWS IoT Core's HTTPS data plane (AWS "
            "Lambda: no connection to keep). None: publish to the log only (no broker)."
        ),
    )
    username: str | None = Field(default=None, description="Broker user name.")
    password: SecretStr | None = Field(default=None, description="Broker password.")
    ca_file: Path | None = Field(
        default=None, description="CA bundle for mqtts:// (default: the system's CAs)."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate for mqtts:// (AWS IoT Core needs one)."
    )
    key_file: Path | None = Field(default=None, description="Client certificate's private key.")
    client_id: str = Field(
        default="facelens",
        min_length=1,
        description=(
            "Prefix of every MQTT client id: '<prefix>-<role>-<random tag>' for clients with "
            "no session to keep (publishers: '<prefix>-serve-pub-<tag>', "
            "'<prefix>-<worker id>-pub-<tag>', '<prefix>-edge-<thing>-pub-<tag>'; an edge "
            "runner's name listener '<prefix>-edge-<thing>-names-<tag>'), and "
            "'<prefix>-<worker id>' for a recognizer's persistent MQTT event session, which "
            "must stay stable across restarts so its unacknowledged events resume (a new "
            "prefix starts a new session). Ids exceed MQTT 3.1.1's guaranteed 23 bytes."
        ),
    )
    spool_max_messages: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Messages kept on disk while the broker is down; beyond this the oldest are dropped "
            "(and counted)."
        ),
    )
