"""Every MQTT client facelens opens has an id of its own, and the one that must resume keeps it.

A broker keeps one connection per client id and closes the older one when
another client connects under the same id, so the ids of different roles
(and of two processes in one role) must differ. The recognizer's event
session is persistent: its id must be the same after a restart, or the
events it had not acknowledged stay in a session no one resumes.
"""

from __future__ import annotations

import re

import pytest

from facelens.bus.mqtt_config import make_client_id
from facelens.config import MqttSettings, Settings
from facelens.errors import ConfigurationError
from facelens.wiring import Components

TAG = "[0-9a-f]{8}"


@pytest.fixture
def mqtt_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"mqtt": MqttSettings(url="mqtt://127.0.0.1:1883")})


def test_each_role_has_its_own_client_id(mqtt_settings: Settings) -> None:
    recognizer = Components(mqtt_settings)  # `facelens recognizer`
    serve = Components(mqtt_settings, instance="serve")
    edge = Components(mqtt_settings, instance="edge-door")
    up = Components(mqtt_settings, instance="up-door")
    cli = Components(mqtt_settings, instance="cli")
    ids = {
        "recognizer publisher": recognizer.mqtt_publisher_endpoint.client_id,
        "recognizer events": recognizer.mqtt_events_endpoint.client_id,
        "serve publisher": serve.mqtt_publisher_endpoint.client_id,
        "edge publisher": edge.mqtt_publisher_endpoint.client_id,
        "edge names": edge.mqtt_names_endpoint.client_id,
        "up publisher": up.mqtt_publisher_endpoint.client_id,
        "up names": up.mqtt_names_endpoint.client_id,
        "cli publisher": cli.mqtt_publisher_endpoint.client_id,
    }
    assert len(set(ids.values())) == len(ids), ids
    assert ids["recognizer events"] == "facelens-recognizer-1"
    assert re.fullmatch(f"facelens-recognizer-1-pub-{TAG}", ids["recognizer publisher"])
    assert re.fullmatch(f"facelens-serve-pub-{TAG}", ids["serve publisher"])
    assert re.fullmatch(f"facelens-edge-door-pub-{TAG}", ids["edge publisher"])
    assert re.fullmatch(f"facelens-edge-door-names-{TAG}", ids["edge names"])
    assert re.fullmatch(f"facelens-up-door-pub-{TAG}", ids["up publisher"])


def test_two_processes_in_one_role_differ_but_the_event_session_is_stable(
    mqtt_settings: Settings,
) -> None:
    first, second = Components(mqtt_settings), Components(mqtt_settings)  # or a restart
    assert first.mqtt_publisher_endpoint.client_id != second.mqtt_publisher_endpoint.client_id
    assert first.mqtt_names_endpoint.client_id != second.mqtt_names_endpoint.client_id
    # Within one process an id never changes, so a reconnect is the same client.
    assert first.mqtt_publisher_endpoint.client_id == first.mqtt_publisher_endpoint.client_id
    # The persistent event session comes back under the same id after a restart...
    assert first.mqtt_events_endpoint.client_id == second.mqtt_events_endpoint.client_id
    # ...and is told apart from another worker's by the worker id.
    other = mqtt_settings.model_copy(
        update={"recognizer": mqtt_settings.recognizer.model_copy(update={"worker_id": "rec-2"})}
    )
    assert Components(other).mqtt_events_endpoint.client_id == "facelens-rec-2"


def test_the_prefix_is_the_setting(mqtt_settings: Settings) -> None:
    mqtt = mqtt_settings.mqtt.model_copy(update={"client_id": "site7"})
    components = Components(mqtt_settings.model_copy(update={"mqtt": mqtt}), instance="serve")
    assert components.mqtt_events_endpoint.client_id == "site7-recognizer-1"
    assert re.fullmatch(f"site7-serve-pub-{TAG}", components.mqtt_publisher_endpoint.client_id)


def test_an_id_needs_a_prefix_and_a_role() -> None:
    assert make_client_id("p", "r") == "p-r"
    assert make_client_id("p", "r", tag="t") == "p-r-t"
    with pytest.raises(ConfigurationError):
        make_client_id("", "r")
    with pytest.raises(ConfigurationError):
        make_client_id("p", "")
