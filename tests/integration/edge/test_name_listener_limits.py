"""The edge's name listener survives a recognizer topic message nested too deep to parse.

Anyone who may publish on the recognizer's topics (an admin key through the
iot-data endpoint reaches the same broker) could send ``"[" * 100000``: its
RecursionError escaped paho's callback and ended the listener's network
thread, so no camera was named again until a restart. A real broker here.
"""

from __future__ import annotations

import json
import time

import paho.mqtt.publish as mqtt_publish

from facelens.edge.names import NameBoard, RecognitionListener
from tests.servers.mosquitto import MosquittoBroker

TOPIC = "rekognition"


def test_a_message_nested_too_deep_does_not_stop_the_listener(
    mqtt_broker: MosquittoBroker,
) -> None:
    board = NameBoard()
    board.remember("faces/cam/1.jpg", 7)
    listener = RecognitionListener(mqtt_broker.endpoint(), board, topic=TOPIC)
    listener.start()
    try:
        assert mqtt_broker.wait_for_log(f"{TOPIC}/unknown"), "the listener never subscribed"
        endpoint = mqtt_broker.endpoint()
        named = {"Key": "faces/cam/1.jpg", "Status": "identified", "Name": "Ada"}
        for payload in (b"[" * 100_000, json.dumps(named).encode()):
            mqtt_publish.single(TOPIC, payload, hostname=endpoint.host, port=endpoint.port)
        deadline = time.monotonic() + 5.0
        while board.name_of(7) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert board.name_of(7) == "Ada"
    finally:
        listener.stop()
