"""Event messages anyone on the broker could send do not stop a recognizer's event source.

A worker reads ObjectCreated events from a real Mosquitto. A message nested
too deep to parse (``"[" * 100000``) must become a delivery with an error, as
other unreadable messages do; and an attempt count in a user property that
``str.isdigit`` passes but ``int`` refuses (``"²"``) raised ValueError in
paho's callback, which ended the source's network thread: no event was
received again until a restart.
"""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from facelens.bus.delivery import Delivery
from facelens.bus.mqtt_events import ATTEMPT_PROPERTY, MqttEventSource
from facelens.storage.events import to_s3_event
from tests.integration.bus.test_mqtt_events import TOPIC, event
from tests.servers.mosquitto import MosquittoBroker


def test_hostile_messages_are_deliveries_and_the_source_keeps_receiving(
    mqtt_broker: MosquittoBroker,
) -> None:
    source = MqttEventSource(mqtt_broker.endpoint("worker-limits"), topic=TOPIC)
    try:
        assert source.wait_ready(10.0), "no SUBACK for the shared subscription"
        endpoint = mqtt_broker.endpoint()
        odd_attempt = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        odd_attempt.UserProperty = (ATTEMPT_PROPERTY, "²")
        valid = json.dumps(to_s3_event([event(1)])).encode()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile", protocol=mqtt.MQTTv5)
        client.connect(endpoint.host, endpoint.port)
        client.loop_start()
        try:
            for payload, properties in (
                (valid, odd_attempt),
                (b"[" * 100_000, None),
                (valid, None),
            ):
                client.publish(TOPIC, payload, qos=1, properties=properties).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        got: list[Delivery] = []
        deadline = time.monotonic() + 10.0
        while len(got) < 3 and time.monotonic() < deadline:
            got += source.receive(max_events=3 - len(got), wait_seconds=0.1)
        assert [len(d.events) for d in got] == [1, 0, 1]
        assert got[0].attempt == 1  # the property that is not a count is ignored
        assert got[1].error is not None
        for delivery in got:
            source.ack(delivery)
    finally:
        source.close()
