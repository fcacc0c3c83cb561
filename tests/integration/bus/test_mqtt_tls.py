"""mqtts:// as AWS IoT Core uses it: the broker verified by a CA file, the client by a certificate.

The certificates are made here (a CA, a server certificate for 127.0.0.1 and
a client certificate), and the broker listens with ``require_certificate``,
so a connection only works if both sides are configured as they should be.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from facelens.bus.mqtt_config import MqttEndpoint
from facelens.bus.mqtt_publisher import MqttPublisher
from facelens.bus.spool import Spool
from tests.servers.mosquitto import BrokerTls, MosquittoBroker, Subscriber, running_broker

DEADLINE_S = 10.0


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_pki(directory: Path) -> Pki:
    import importlib.util
    import ipaddress

    if importlib.util.find_spec("cryptography") is None:
        message = "the cryptography package (to make test certificates) is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def issue(
        subject: str, key: Any, issuer: x509.Name, signer: Any, *, ca: bool, ip: bool = False
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ip:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    def save(path: Path, cert: x509.Certificate | None = None, key: Any = None) -> Path:
        if cert is not None:
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        else:
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("facelens test CA", ca_key, name("facelens test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = issue("127.0.0.1", server_key, ca.subject, ca_key, ca=False, ip=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = issue("camera-1", client_key, ca.subject, ca_key, ca=False)
    return Pki(
        ca=save(directory / "ca.pem", ca),
        server_cert=save(directory / "server.pem", server),
        server_key=save(directory / "server.key", key=server_key),
        client_cert=save(directory / "client.pem", client),
        client_key=save(directory / "client.key", key=client_key),
    )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return _write_pki(tmp_path)


@pytest.fixture
def tls_broker(pki: Pki) -> Iterator[MosquittoBroker]:
    with running_broker(tls=BrokerTls(pki.ca, pki.server_cert, pki.server_key)) as broker:
        yield broker


def test_a_publisher_with_a_client_certificate_publishes_over_tls(
    tls_broker: MosquittoBroker, pki: Pki, tmp_path: Path
) -> None:
    endpoint = MqttEndpoint.from_url(
        tls_broker.tls_url,
        client_id="camera-1",
        ca_file=pki.ca,
        cert_file=pki.client_cert,
        key_file=pki.client_key,
    )
    spool = Spool(tmp_path / "spool.db", fsync=False)
    with Subscriber(tls_broker, "secure/#") as subscriber:  # on the plain loopback listener
        publisher = MqttPublisher(endpoint, spool=spool)
        publisher.start()
        try:
            publisher.publish("secure/x", b"over tls")
            assert publisher.flush(DEADLINE_S)
            assert [m.payload for m in subscriber.wait_for(1)] == [b"over tls"]
        finally:
            publisher.stop()
            spool.close()


@pytest.mark.parametrize(
    ("use_ca", "use_client_cert", "broker_says"),
    [
        (False, True, "unknown ca"),  # the system CAs do not trust a private broker
        (True, False, "peer did not return a certificate"),
    ],
)
def test_a_client_missing_a_tls_piece_is_refused_and_keeps_its_messages(
    tls_broker: MosquittoBroker,
    pki: Pki,
    tmp_path: Path,
    use_ca: bool,
    use_client_cert: bool,
    broker_says: str,
) -> None:
    endpoint = MqttEndpoint.from_url(
        tls_broker.tls_url,
        client_id="camera-2",
        ca_file=pki.ca if use_ca else None,
        cert_file=pki.client_cert if use_client_cert else None,
        key_file=pki.client_key if use_client_cert else None,
    )
    spool = Spool(tmp_path / "spool.db", fsync=False)
    publisher = MqttPublisher(endpoint, spool=spool)
    publisher.start()
    try:
        publisher.publish("secure/x", b"kept")
        assert tls_broker.wait_for_log(broker_says)
        assert not publisher.connected
        assert publisher.stats.pending == 1
    finally:
        publisher.stop()
        spool.close()
