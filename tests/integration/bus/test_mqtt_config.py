"""MQTT endpoints from URLs, and the client they configure."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelens.bus.mqtt_config import MqttEndpoint, connect_client
from facelens.errors import ConfigurationError


def test_mqtt_url_defaults_to_port_1883_without_tls() -> None:
    endpoint = MqttEndpoint.from_url("mqtt://broker.local", client_id="cam-1")
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("broker.local", 1883, False)
    assert endpoint.client_id == "cam-1"
    assert endpoint.username is None
    assert endpoint.keepalive == 30


def test_mqtts_url_defaults_to_port_8883_with_tls_and_takes_client_certificates(
    tmp_path: Path,
) -> None:
    endpoint = MqttEndpoint.from_url(
        "mqtts://abc-ats.iot.eu-west-1.amazonaws.com",
        client_id="thing",
        ca_file=tmp_path / "ca.pem",
        cert_file=tmp_path / "cert.pem",
        key_file=tmp_path / "key.pem",
    )
    assert (endpoint.port, endpoint.tls) == (8883, True)
    assert endpoint.cert_file == tmp_path / "cert.pem"


def test_credentials_in_the_url_are_decoded_and_the_password_is_never_shown() -> None:
    endpoint = MqttEndpoint.from_url("mqtt://us%40er:p%3Ass@[::1]:1999/", client_id="x")
    assert (endpoint.host, endpoint.port) == ("::1", 1999)
    assert (endpoint.username, endpoint.password) == ("us@er", "p:ss")
    assert "p:ss" not in repr(endpoint)
    given = MqttEndpoint.from_url("mqtt://h", client_id="x", username="u", password="secret")
    assert (given.username, given.password) == ("u", "secret")
    assert "secret" not in repr(given)


@pytest.mark.parametrize(
    "url",
    [
        "http://host",
        "host:1883",
        "mqtt://",
        "mqtt://host:99999",
        "mqtt://host:port",
        "mqtt://host/topic",
        "mqtt://host?x=1",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        MqttEndpoint.from_url(url, client_id="x")


def test_inconsistent_settings_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="mqtts"):
        MqttEndpoint.from_url("mqtt://h", client_id="x", ca_file=tmp_path / "ca.pem")
    with pytest.raises(ConfigurationError, match="not both"):
        MqttEndpoint.from_url("mqtt://u:p@h", client_id="x", username="v")
    with pytest.raises(ConfigurationError, match="certificate"):
        MqttEndpoint.from_url("mqtts://h", client_id="x", key_file=tmp_path / "key.pem")
    with pytest.raises(ConfigurationError, match="client_id"):
        MqttEndpoint.from_url("mqtt://h", client_id="")


def test_a_missing_tls_file_fails_before_connecting(tmp_path: Path) -> None:
    endpoint = MqttEndpoint.from_url("mqtts://h", client_id="x", ca_file=tmp_path / "none.pem")
    with pytest.raises(ConfigurationError, match="does not exist"):
        connect_client(endpoint, clean_session=True)


def test_receive_maximum_needs_mqtt5() -> None:
    endpoint = MqttEndpoint.from_url("mqtt://127.0.0.1:1", client_id="x")
    with pytest.raises(ConfigurationError):
        connect_client(endpoint, clean_session=True, receive_maximum=2)
