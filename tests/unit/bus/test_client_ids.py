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
from facelens.wiring.bus import events_endpoint, names_endpoint, publisher_endpoint
from facelens.wiring.process import process_role

TAG = "[0-9a-f]{8}"


@pytest.fixture
def mqtt_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"mqtt": MqttSettings(url="mqtt://127.0.0.1:1883")})


def test_each_role_has_its_own_client_id(mqtt_settings: Settings) -> None:
    s = mqtt_settings
    recognizer = process_role(s)  # `facelens recognizer`
    serve = process_role(s, "serve")
    edge = process_role(s, "edge-door")
    up = process_role(s, "up-door")
    cli = process_role(s, "cli")
    ids = {
        "recognizer publisher": publisher_endpoint(s, recognizer).client_id,
        "recognizer events": events_endpoint(s).client_id,
        "serve publisher": publisher_endpoint(s, serve).client_id,
        "edge publisher": publisher_endpoint(s, edge).client_id,
        "edge names": names_endpoint(s, edge).client_id,
        "up publisher": publisher_endpoint(s, up).client_id,
        "up names": names_endpoint(s, up).client_id,
        "cli publisher": publisher_endpoint(s, cli).client_id,
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
    s = mqtt_settings
    first, second = process_role(s), process_role(s)  # or a restart
    assert publisher_endpoint(s, first).client_id != publisher_endpoint(s, second).client_id
    assert names_endpoint(s, first).client_id != names_endpoint(s, second).client_id
    # Within one process an id never changes, so a reconnect is the same client.
    assert publisher_endpoint(s, first).client_id == publisher_endpoint(s, first).client_id
    # The persistent event session comes back under the same id after a restart...
    assert events_endpoint(s).client_id == events_endpoint(s).client_id
    # ...and is told apart from another worker's by the worker id.
    other = mqtt_settings.model_copy(
        update={"recognizer": mqtt_settings.recognizer.model_copy(update={"worker_id": "rec-2"})}
    )
    assert events_endpoint(other).client_id == "facelens-rec-2"


def test_the_prefix_is_the_setting(mqtt_settings: Settings) -> None:
    mqtt = mqtt_settings.mqtt.model_copy(update={"client_id": "site7"})
    settings = mqtt_settings.model_copy(update={"mqtt": mqtt})
    serve = process_role(settings, "serve")
    assert events_endpoint(settings).client_id == "site7-recognizer-1"
    assert re.fullmatch(f"site7-serve-pub-{TAG}", publisher_endpoint(settings, serve).client_id)


def test_an_id_needs_a_prefix_and_a_role() -> None:
    assert make_client_id("p", "r") == "p-r"
    assert make_client_id("p", "r", tag="t") == "p-r-t"
    with pytest.raises(ConfigurationError):
        make_client_id("", "r")
    with pytest.raises(ConfigurationError):
        make_client_id("p", "")
